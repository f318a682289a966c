"""Accepting a message into the read state, members marking conversations read, history pages."""

from __future__ import annotations

from uuid import UUID

import pytest

from chat4all.application.history import ReadHistory
from chat4all.application.reading import MarkConversationRead, store_new_message
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.errors import Forbidden, NotFound
from chat4all.domain.events import EventType
from chat4all.domain.history import PageRequest
from chat4all.domain.messages import Message, MessageDraft, MessageStatus, Priority, TextPayload
from tests.fakes import InMemoryEventNotifier, InMemoryUnitOfWorkFactory, ManualClock

ALICE, BOB, CAROL, MALLORY = (UUID(int=number) for number in (1, 2, 3, 66))


class Scene:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.uow = InMemoryUnitOfWorkFactory()
        self.store = self.uow.store
        self.notifier = InMemoryEventNotifier()
        self.mark_read = MarkConversationRead(self.uow, self.clock, self.notifier)
        self.next_id = 1000

    async def conversation(self, *members: UUID) -> Conversation:
        self.next_id += 1
        kind = ConversationType.PRIVATE if len(members) == 2 else ConversationType.GROUP
        conversation = Conversation.start(
            conversation_id=UUID(int=self.next_id),
            type=kind,
            members=list(members),
            creator=members[0],
            metadata=ConversationMetadata(),
            now=self.clock.now(),
        )
        async with self.uow() as uow:
            await uow.conversations.add(conversation)
            await uow.commit()
        return conversation

    async def send(self, conversation: Conversation, sender: UUID, to: UUID | None = None) -> Message:
        self.next_id += 1
        draft = MessageDraft(UUID(int=self.next_id), conversation.id, sender, to, ("sms",), TextPayload("hi"), Priority.NORMAL)
        message = Message.accept(draft, self.clock.advance())
        async with self.uow() as uow:
            await store_new_message(uow, conversation, message)
            await uow.commit()
        return message

    async def deliver(self, message: Message) -> None:
        async with self.uow() as uow:
            stored = (await uow.messages.get_many([message.id], for_update=True))[message.id]
            stored.record_delivery("sms", delivered=True, now=self.clock.advance())
            await uow.messages.update_many([stored])
            recipients = [receipt.recipient_id for receipt in await uow.receipts.for_message(message.id)]
            await uow.receipts.mark_delivered([(message.id, recipient) for recipient in recipients], self.clock.now())
            await uow.commit()

    def unread(self, conversation: Conversation, member: UUID) -> int:
        horizon = self.store.horizons.get((conversation.id, member))
        return 0 if horizon is None else horizon.unread_count

    def events(self, user: UUID, type: EventType | None = None) -> list:
        return [event for event in self.store.user_events.get(user, []) if type is None or event.type is type]


@pytest.fixture
def scene() -> Scene:
    return Scene()


async def test_an_accepted_message_is_numbered_counted_unread_by_its_recipients_and_told_to_every_member(scene):
    team = await scene.conversation(ALICE, BOB, CAROL)
    first = await scene.send(team, ALICE)
    second = await scene.send(team, CAROL, to=BOB)
    assert [scene.store.positions[message.id] for message in (first, second)] == [1, 2]
    assert scene.store.message_counts[team.id] == 2 and scene.store.last_messages[team.id] == second.id
    assert (scene.unread(team, ALICE), scene.unread(team, BOB), scene.unread(team, CAROL)) == (0, 2, 1)
    for member in (ALICE, BOB, CAROL):
        assert [(event.seq, event.data["message_id"]) for event in scene.events(member)] == [
            (1, str(first.id)),
            (2, str(second.id)),
        ]


async def test_reading_up_to_a_message_reads_every_receipt_before_it_and_tells_every_member(scene):
    team = await scene.conversation(ALICE, BOB, CAROL)
    first, second, third = [await scene.send(team, ALICE) for _ in range(3)]
    outcome = await scene.mark_read.execute(BOB, team.id, second.id)
    assert outcome.advanced and outcome.horizon.position == 2 and outcome.horizon.unread_count == 1
    assert scene.unread(team, BOB) == 1 and scene.unread(team, CAROL) == 3
    receipts = scene.store.receipts
    assert [receipts[message.id, BOB].read_at is not None for message in (first, second, third)] == [True, True, False]
    for member in (ALICE, BOB, CAROL):
        (read,) = scene.events(member, EventType.CONVERSATION_READ)
        assert read.data["reader_id"] == str(BOB) and read.data["up_to"] == str(second.id) and read.data["position"] == 2
    assert scene.notifier.notified[-1] == {ALICE, BOB, CAROL}


async def test_an_older_up_to_answers_as_usual_and_changes_nothing(scene):
    chat = await scene.conversation(ALICE, BOB)
    first, second = await scene.send(chat, ALICE), await scene.send(chat, ALICE)
    await scene.mark_read.execute(BOB, chat.id, second.id)
    commits, events = scene.store.commits, scene.events(BOB)
    for older in (first, second):
        outcome = await scene.mark_read.execute(BOB, chat.id, older.id)
        assert not outcome.advanced and outcome.horizon.position == 2
    assert scene.store.commits == commits and scene.events(BOB) == events


async def test_only_a_member_may_mark_read_and_only_a_message_of_that_conversation(scene):
    chat, other = await scene.conversation(ALICE, BOB), await scene.conversation(ALICE, CAROL)
    mine, elsewhere = await scene.send(chat, ALICE), await scene.send(other, ALICE)
    with pytest.raises(Forbidden):
        await scene.mark_read.execute(MALLORY, chat.id, mine.id)
    with pytest.raises(NotFound) as not_here:
        await scene.mark_read.execute(BOB, chat.id, elsewhere.id)
    with pytest.raises(NotFound) as nowhere:
        await scene.mark_read.execute(BOB, chat.id, UUID(int=999_999))
    assert not_here.value.code == nowhere.value.code == "message_not_found"
    with pytest.raises(NotFound) as no_conversation:
        await scene.mark_read.execute(BOB, UUID(int=999_998), mine.id)
    assert no_conversation.value.code == "conversation_not_found"
    assert scene.unread(chat, BOB) == 1 and scene.events(BOB, EventType.CONVERSATION_READ) == []


async def test_a_message_every_recipient_read_becomes_read_and_its_sender_is_told(scene):
    team = await scene.conversation(ALICE, BOB, CAROL)
    message = await scene.send(team, ALICE)
    await scene.deliver(message)
    await scene.mark_read.execute(BOB, team.id, message.id)
    assert scene.store.messages[message.id].status is MessageStatus.DELIVERED
    assert scene.events(ALICE, EventType.MESSAGE_STATUS) == []
    await scene.mark_read.execute(CAROL, team.id, message.id)
    stored = scene.store.messages[message.id]
    assert stored.status is MessageStatus.READ and stored.read_by_all_at == scene.clock.now()
    (told,) = scene.events(ALICE, EventType.MESSAGE_STATUS)
    assert told.data["status"] == "read" and told.data["message_id"] == str(message.id)
    assert scene.events(BOB, EventType.MESSAGE_STATUS) == scene.events(CAROL, EventType.MESSAGE_STATUS) == []


async def test_a_message_addressed_to_someone_else_is_not_the_readers_to_read(scene):
    team = await scene.conversation(ALICE, BOB, CAROL)
    to_bob = await scene.send(team, ALICE, to=BOB)
    outcome = await scene.mark_read.execute(CAROL, team.id, to_bob.id)
    assert outcome.advanced and outcome.horizon.unread_count == 0
    assert (to_bob.id, CAROL) not in scene.store.receipts
    assert scene.store.messages[to_bob.id].read_by_all_at is None
    await scene.mark_read.execute(BOB, team.id, to_bob.id)
    assert scene.store.messages[to_bob.id].read_by_all_at is not None


async def test_a_read_that_fails_to_commit_leaves_no_trace(scene, monkeypatch):
    chat = await scene.conversation(ALICE, BOB)
    message = await scene.send(chat, ALICE)
    before = scene.events(BOB)

    async def broken(self, events):
        raise ConnectionError("database went away")

    monkeypatch.setattr("tests.fakes.events.InMemoryUserEventLog.append", broken)
    with pytest.raises(ConnectionError):
        await scene.mark_read.execute(BOB, chat.id, message.id)
    assert scene.unread(chat, BOB) == 1 and scene.store.receipts[message.id, BOB].read_at is None
    assert scene.events(BOB) == before and len(scene.notifier.notified) == 0


async def test_history_pages_by_offset_after_and_before_read_only_the_positions_they_show(scene):
    chat = await scene.conversation(ALICE, BOB)
    sent = [await scene.send(chat, ALICE if number % 2 else BOB) for number in range(12)]
    history = ReadHistory(scene.uow)

    newest = await history.page(BOB, chat.id, PageRequest(5, offset=10))
    assert [message.id for message in newest.messages] == [message.id for message in sent[10:]]
    assert newest.total == 12 and newest.links.after is None and newest.links.before.position == 11

    older = await history.page(BOB, chat.id, PageRequest(5, before=newest.links.before))
    assert [message.id for message in older.messages] == [message.id for message in sent[5:10]]
    oldest = await history.page(BOB, chat.id, PageRequest(5, before=older.links.before))
    assert [message.id for message in oldest.messages] == [message.id for message in sent[:5]]
    assert oldest.links.before is None

    again = await history.page(BOB, chat.id, PageRequest(5, after=oldest.links.after))
    assert [message.id for message in again.messages] == [message.id for message in sent[5:10]]
    asked = [span for uow in scene.uow.opened if hasattr(uow, "history") for span in uow.history.ranges]
    assert all(len(span) <= 5 for span in asked) and len(asked) == 4


async def test_a_page_beyond_the_end_reads_nothing_and_only_members_read_history(scene):
    chat = await scene.conversation(ALICE, BOB)
    await scene.send(chat, ALICE)
    history = ReadHistory(scene.uow)
    page = await history.page(ALICE, chat.id, PageRequest(10, offset=50))
    assert page.messages == [] and page.total == 1 and page.links.before is None and page.links.after is None
    assert not scene.uow.opened[-1].history.ranges
    with pytest.raises(Forbidden):
        await history.page(MALLORY, chat.id, PageRequest(10))
    with pytest.raises(NotFound):
        await history.page(ALICE, UUID(int=424242), PageRequest(10))
