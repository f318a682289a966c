from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chat4all.domain.errors import InvalidInput
from chat4all.domain.messages import (
    MAX_TEXT_LENGTH,
    DeliveryStatus,
    FilePayload,
    Message,
    MessageDraft,
    MessageStatus,
    Priority,
    TextPayload,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
RANK = {
    MessageStatus.ACCEPTED: 0,
    MessageStatus.ROUTED: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.FAILED: 2,
    MessageStatus.READ: 3,
}
KNOWN_CHANNELS = ["whatsapp", "instagram", "telegram", "sms"]


def draft(channels=("whatsapp",), text="hi", **changes) -> MessageDraft:
    fields = dict(
        message_id=UUID(int=1),
        conversation_id=UUID(int=2),
        sender_id=UUID(int=3),
        recipient_id=None,
        channels=tuple(channels),
        payload=TextPayload(text),
        priority=Priority.NORMAL,
    )
    fields.update(changes)
    return MessageDraft(**fields)


class MessageLifecycle(RuleBasedStateMachine):
    """Arbitrary interleavings of routing and per-channel outcomes, including repeats and strangers."""

    @initialize(channels=st.lists(st.sampled_from(KNOWN_CHANNELS), min_size=1, max_size=4, unique=True))
    def accept(self, channels: list[str]) -> None:
        self.time = START
        self.message = Message.accept(draft(channels), self.time)
        self.rank = 0
        self.outcome_times: dict[str, datetime] = {}
        self.terminal_at: datetime | None = None
        self.routed_at: datetime | None = None
        self.read_by_all_at: datetime | None = None

    def tick(self) -> datetime:
        self.time += timedelta(seconds=1)
        return self.time

    @rule()
    def route(self) -> None:
        was_accepted = self.message.status is MessageStatus.ACCEPTED
        now = self.tick()
        assert self.message.mark_routed(now) is was_accepted
        if was_accepted:
            self.routed_at = now

    @rule(channel=st.sampled_from([*KNOWN_CHANNELS, "unknown"]), delivered=st.booleans())
    def record(self, channel: str, delivered: bool) -> None:
        was_pending = self.message.deliveries.get(channel) is DeliveryStatus.PENDING
        before = self.message.deliveries.get(channel)
        now = self.tick()
        assert self.message.record_delivery(channel, delivered=delivered, now=now) is was_pending
        if was_pending:
            self.outcome_times[channel] = now
            self.routed_at = self.routed_at or now
            expected = DeliveryStatus.DELIVERED if delivered else DeliveryStatus.FAILED
            assert self.message.deliveries[channel] is expected
        else:
            assert self.message.deliveries.get(channel) is before
        if self.message.status.is_terminal and self.terminal_at is None:
            self.terminal_at = now

    @rule()
    def everyone_reads(self) -> None:
        now = self.tick()
        assert self.message.record_read_by_all(now) is (self.read_by_all_at is None)
        self.read_by_all_at = self.read_by_all_at or now

    @invariant()
    def status_never_moves_backwards(self) -> None:
        rank = RANK[self.message.status]
        assert rank >= self.rank
        self.rank = rank

    @invariant()
    def terminal_exactly_when_every_channel_ended(self) -> None:
        ended = all(status is not DeliveryStatus.PENDING for status in self.message.deliveries.values())
        assert self.message.status.is_terminal == ended
        assert self.message.pending_channels() == [
            channel for channel, status in self.message.deliveries.items() if status is DeliveryStatus.PENDING
        ]

    @invariant()
    def delivered_iff_all_channels_delivered(self) -> None:
        all_delivered = all(status is DeliveryStatus.DELIVERED for status in self.message.deliveries.values())
        assert (self.message.status in (MessageStatus.DELIVERED, MessageStatus.READ)) == all_delivered
        if self.message.status is MessageStatus.FAILED:
            assert any(status is DeliveryStatus.FAILED for status in self.message.deliveries.values())

    @invariant()
    def history_tells_what_happened_when(self) -> None:
        history = self.message.history
        assert history[0].status == "accepted" and history[0].at == START
        routed = [event for event in history if event.status == "routed"]
        if self.routed_at is None:
            assert routed == []
        else:
            assert [event.at for event in routed] == [self.routed_at]
        outcomes = {event.channel: event for event in history if event.channel is not None}
        assert len(outcomes) == len([event for event in history if event.channel is not None])
        assert {channel: event.at for channel, event in outcomes.items()} == self.outcome_times
        for channel, event in outcomes.items():
            assert event.status == self.message.deliveries[channel].value
        final = [event for event in history if event.channel is None and event.status in ("delivered", "failed")]
        if self.terminal_at is None:
            assert final == []
        else:
            terminal = MessageStatus.FAILED if self.message.status is MessageStatus.FAILED else MessageStatus.DELIVERED
            assert [(event.status, event.at) for event in final] == [(terminal.value, self.terminal_at)]
        read = [event for event in history if event.status == "read"]
        if self.message.status is MessageStatus.READ:
            # Read once every recipient has and every channel delivered: whichever came last.
            assert [event.at for event in read] == [max(self.read_by_all_at, self.terminal_at)]
        else:
            assert read == []
        if final:
            assert history[-1] is (read or final)[0]
        assert [event.at for event in history] == sorted(event.at for event in history)
        assert self.message.new_events == history

    @invariant()
    def read_only_when_everyone_read_and_every_channel_delivered(self) -> None:
        expected = self.read_by_all_at is not None and self.message.status in (MessageStatus.DELIVERED, MessageStatus.READ)
        assert (self.message.status is MessageStatus.READ) == expected
        assert self.message.read_by_all_at == self.read_by_all_at


TestMessageLifecycle = MessageLifecycle.TestCase
TestMessageLifecycle.settings = settings(max_examples=200, stateful_step_count=15, deadline=None)


def test_a_failed_message_names_its_failed_channels():
    message = Message.accept(draft(["whatsapp", "instagram", "sms"]), START)
    message.record_delivery("whatsapp", delivered=False, now=START, detail="gave up after 3 attempts")
    message.record_delivery("instagram", delivered=True, now=START)
    message.record_delivery("sms", delivered=False, now=START)
    assert message.status is MessageStatus.FAILED
    assert message.history[-1].detail == "failed on: whatsapp, sms"
    whatsapp = next(event for event in message.history if event.channel == "whatsapp")
    assert whatsapp.detail == "gave up after 3 attempts"


def test_a_message_read_by_everyone_before_its_channels_answered_is_read_once_they_deliver():
    message = Message.accept(draft(["whatsapp", "sms"]), START)
    message.record_delivery("whatsapp", delivered=True, now=START + timedelta(seconds=1))
    assert message.record_read_by_all(START + timedelta(seconds=2))
    assert message.status is MessageStatus.ROUTED
    message.record_delivery("sms", delivered=True, now=START + timedelta(seconds=3))
    assert message.status is MessageStatus.READ
    assert [(event.status, event.at.second) for event in message.history[-2:]] == [("delivered", 3), ("read", 3)]


def test_a_failed_message_stays_failed_when_everyone_has_read_it():
    message = Message.accept(draft(["whatsapp"]), START)
    message.record_delivery("whatsapp", delivered=False, now=START)
    assert message.record_read_by_all(START + timedelta(seconds=1))
    assert message.status is MessageStatus.FAILED
    assert message.read_by_all_at == START + timedelta(seconds=1)
    assert message.status.is_terminal


@pytest.mark.parametrize("length", [1, MAX_TEXT_LENGTH])
def test_text_of_1_to_4096_characters_is_accepted(length):
    assert len(TextPayload("x" * length).text) == length


@pytest.mark.parametrize("length", [0, MAX_TEXT_LENGTH + 1])
def test_text_outside_1_to_4096_characters_is_rejected(length):
    with pytest.raises(InvalidInput) as raised:
        TextPayload("x" * length)
    assert "payload.text" in raised.value.field_errors


@settings(max_examples=30)
@given(channels=st.permutations(KNOWN_CHANNELS))
def test_fingerprint_ignores_channel_order(channels):
    assert draft(channels).fingerprint() == draft(KNOWN_CHANNELS).fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"text": "other"},
        {"channels": ("instagram",)},
        {"recipient_id": UUID(int=9)},
        {"priority": Priority.HIGH},
        {"conversation_id": UUID(int=8)},
        {"sender_id": UUID(int=7)},
    ],
)
def test_fingerprint_changes_with_content(change):
    assert draft(**change).fingerprint() != draft().fingerprint()


def test_file_fingerprint_depends_only_on_the_file_id():
    file_id = UUID(int=5)
    full = FilePayload(file_id, "a.png", 10, "image/png", "0" * 64)
    bare = FilePayload(file_id, "", 0, "", "")
    assert draft(payload=full).fingerprint() == draft(payload=bare).fingerprint()
    other = FilePayload(UUID(int=6), "a.png", 10, "image/png", "0" * 64)
    assert draft(payload=other).fingerprint() != draft(payload=full).fingerprint()
