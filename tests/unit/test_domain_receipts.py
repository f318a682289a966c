"""Read horizons, receipts and unread counts under any interleaving of sends, reads and deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.messages import Message, MessageDraft, MessageStatus, Priority, TextPayload
from chat4all.domain.receipts import MessageRef, ReadHorizon, Receipt, read_by_all

START = datetime(2025, 1, 1, tzinfo=UTC)
CONVERSATION = UUID(int=100)
MEMBERS = [UUID(int=number) for number in range(1, 5)]


def group() -> Conversation:
    return Conversation.start(
        conversation_id=CONVERSATION,
        type=ConversationType.GROUP,
        members=MEMBERS,
        creator=MEMBERS[0],
        metadata=ConversationMetadata(),
        now=START,
    )


class ConversationReading(RuleBasedStateMachine):
    """One group: members send (to everyone or to one member), read up to any message, and the
    channel answers; receipts are marked as an adapter marks them (the reader's unread receipts
    up to the new horizon) and the horizon is given the positions it turned read."""

    @initialize()
    def start(self) -> None:
        self.conversation = group()
        self.time = START
        self.horizons = {member: ReadHorizon(CONVERSATION, member) for member in MEMBERS}
        self.messages: list[Message] = []  # index = position - 1
        self.receipts: dict[tuple[int, UUID], Receipt] = {}
        self.previous_positions = {member: 0 for member in MEMBERS}

    def tick(self) -> datetime:
        self.time += timedelta(seconds=1)
        return self.time

    @rule(sender=st.sampled_from(MEMBERS), to=st.one_of(st.none(), st.sampled_from(MEMBERS)))
    def send(self, sender: UUID, to: UUID | None) -> None:
        to = None if to == sender else to
        position = len(self.messages) + 1
        message_id = UUID(int=10_000 + position)
        draft = MessageDraft(message_id, CONVERSATION, sender, to, ("whatsapp",), TextPayload("hi"), Priority.NORMAL)
        self.messages.append(Message.accept(draft, self.tick()))
        for recipient in self.conversation.recipients_of(sender, to):
            self.receipts[position, recipient] = Receipt(message_id, recipient)
            self.horizons[recipient] = self.horizons[recipient].count_new(position)

    @precondition(lambda self: self.messages)
    @rule(reader=st.sampled_from(MEMBERS), pick=st.integers(0, 10**6))
    def read(self, reader: UUID, pick: int) -> None:
        position = 1 + pick % len(self.messages)
        horizon, now = self.horizons[reader], self.tick()
        up_to = MessageRef(self.messages[position - 1].id, position)
        if horizon.covers(position):
            assert horizon.advance(up_to, now, []) is None  # an older up_to changes nothing
            return
        newly_read = []
        for (at, recipient), receipt in list(self.receipts.items()):
            if recipient == reader and at <= position and (changed := receipt.read(now)) is not None:
                self.receipts[at, recipient] = changed
                newly_read.append(at)
        advanced = horizon.advance(up_to, now, newly_read)
        assert advanced is not None and advanced.position == position and advanced.read_at == now
        self.horizons[reader] = advanced
        for at in newly_read:
            if read_by_all(self._receipts_of(at)):
                assert self.messages[at - 1].record_read_by_all(now)

    @precondition(lambda self: self.messages)
    @rule(pick=st.integers(0, 10**6), delivered=st.booleans())
    def channel_answers(self, pick: int, delivered: bool) -> None:
        position = 1 + pick % len(self.messages)
        now = self.tick()
        if self.messages[position - 1].record_delivery("whatsapp", delivered=delivered, now=now) and delivered:
            for (at, recipient), receipt in list(self.receipts.items()):
                if at == position and (changed := receipt.delivered(now)) is not None:
                    self.receipts[at, recipient] = changed

    def _receipts_of(self, position: int) -> list[Receipt]:
        return [receipt for (at, _), receipt in self.receipts.items() if at == position]

    @invariant()
    def unread_count_equals_a_recount(self) -> None:
        for member, horizon in self.horizons.items():
            unread_receipts = [at for (at, recipient), r in self.receipts.items() if recipient == member and r.read_at is None]
            addressed_beyond = [
                position
                for position, message in enumerate(self.messages, 1)
                if member in self.conversation.recipients_of(message.sender_id, message.recipient_id)
                and position > horizon.position
            ]
            assert horizon.unread_count == len(unread_receipts) == len(addressed_beyond) >= 0

    @invariant()
    def horizons_only_advance(self) -> None:
        for member, horizon in self.horizons.items():
            assert horizon.position >= self.previous_positions[member]
            self.previous_positions[member] = horizon.position

    @invariant()
    def a_receipt_is_read_exactly_when_its_readers_horizon_passed_it(self) -> None:
        for (position, recipient), receipt in self.receipts.items():
            assert (receipt.read_at is not None) == self.horizons[recipient].covers(position)
            if receipt.read_at is not None:
                assert receipt.delivered_at is not None and receipt.delivered_at <= receipt.read_at

    @invariant()
    def a_message_is_read_when_every_recipient_read_it_and_every_channel_delivered(self) -> None:
        for position, message in enumerate(self.messages, 1):
            everyone = read_by_all(self._receipts_of(position))
            assert (message.read_by_all_at is not None) == everyone
            assert (message.status is MessageStatus.READ) == (everyone and message.deliveries["whatsapp"].value == "delivered")


TestConversationReading = ConversationReading.TestCase
TestConversationReading.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


@given(
    old=st.integers(0, 50),
    width=st.integers(1, 50),
    unread=st.integers(0, 200),
    noise=st.lists(st.integers(-10, 120), max_size=30),
)
def test_only_newly_read_positions_between_the_horizons_count_each_once(old, width, unread, noise):
    up_to = MessageRef(UUID(int=1), old + width)
    genuine = list(range(old + 1, old + width + 1))[: min(width, unread)]
    horizon = ReadHorizon(CONVERSATION, MEMBERS[0], position=old, unread_count=unread)
    advanced = horizon.advance(up_to, START, genuine + genuine + noise)
    counted = set(genuine) | {position for position in noise if old < position <= old + width}
    assert advanced is not None
    assert advanced.unread_count == max(0, unread - len(counted))


def test_an_older_or_equal_up_to_changes_nothing():
    horizon = ReadHorizon(CONVERSATION, MEMBERS[0], position=5, message_id=UUID(int=5), read_at=START, unread_count=2)
    assert horizon.advance(MessageRef(UUID(int=3), 3), START + timedelta(1), [3]) is None
    assert horizon.advance(MessageRef(UUID(int=5), 5), START + timedelta(1), [5]) is None


def test_a_receipt_is_delivered_and_read_once_and_reading_proves_delivery():
    receipt = Receipt(UUID(int=1), MEMBERS[1])
    read = receipt.read(START)
    assert read is not None and read.delivered_at == read.read_at == START
    assert read.read(START + timedelta(1)) is None
    assert read.delivered(START + timedelta(1)) is None
    delivered = receipt.delivered(START)
    assert delivered is not None and delivered.read(START + timedelta(1)).delivered_at == START


def test_no_receipts_is_not_read_by_all():
    assert not read_by_all([])


@pytest.mark.parametrize("fields", [dict(position=-1), dict(unread_count=-1)])
def test_a_horizon_is_never_negative(fields):
    with pytest.raises(ValueError):
        ReadHorizon(CONVERSATION, MEMBERS[0], **fields)


def test_a_message_at_or_before_the_horizon_is_not_counted_unread():
    horizon = ReadHorizon(CONVERSATION, MEMBERS[0], position=5, unread_count=1)
    assert horizon.count_new(5) == horizon
    assert horizon.count_new(6).unread_count == 2
