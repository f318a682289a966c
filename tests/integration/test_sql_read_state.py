"""Read state on real databases, through the use cases: messages sent through the unit of work,
members marking conversations read, history pages by position; unread counts always equal a
recount of the unread receipts, also under concurrent sends and reads (PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.caching import ExpiringCache
from chat4all.adapters.sql.event_log import SqlUserEventReader
from chat4all.adapters.sql.tables import conversation_reads, conversations, message_receipts, messages
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.history import ReadHistory
from chat4all.application.messaging import SendMessage, SendRequest
from chat4all.application.reading import MarkConversationRead
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.events import EventType, UserEvent
from chat4all.domain.history import PageRequest
from chat4all.domain.messages import Message, MessageStatus, Priority
from chat4all.domain.users import User

pytestmark = pytest.mark.services


class TickingClock:
    def __init__(self) -> None:
        self._ticks = itertools.count()

    def now(self) -> datetime:
        return datetime(2026, 4, 1, 9, 0, tzinfo=UTC) + timedelta(milliseconds=next(self._ticks))


class Scene:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine, self.uow, self.clock = engine, SqlUnitOfWorkFactory(engine), TickingClock()
        self.send_message = SendMessage(self.uow, self.clock, ("sms",), caches=ExpiringCache)
        self.mark_read = MarkConversationRead(self.uow, self.clock)

    async def users(self, count: int) -> list[UUID]:
        users = [User(uuid4(), f"member{index}", "h", self.clock.now()) for index in range(count)]
        async with self.uow() as tx:
            for user in users:
                await tx.users.add(user)
            await tx.commit()
        return [user.id for user in users]

    async def conversation(self, members: list[UUID]) -> Conversation:
        conversation = Conversation.start(
            conversation_id=uuid4(),
            type=ConversationType.PRIVATE if len(members) == 2 else ConversationType.GROUP,
            members=members,
            creator=members[0],
            metadata=ConversationMetadata(name=None if len(members) == 2 else "team"),
            now=self.clock.now(),
        )
        async with self.uow() as tx:
            await tx.conversations.add(conversation)
            await tx.commit()
        return conversation

    async def send(self, conversation: Conversation, sender: UUID, to: UUID | None = None) -> Message:
        request = SendRequest(uuid4(), conversation.id, sender, to, ("sms",), "hi", None, Priority.NORMAL)
        return await self.send_message.execute(sender, request)

    async def unread_and_recount(self) -> tuple[dict[tuple[UUID, UUID], int], dict[tuple[UUID, UUID], int]]:
        unread_receipts = (
            select(message_receipts.c.conversation_id, message_receipts.c.recipient_id, func.count())
            .where(message_receipts.c.read_at.is_(None))
            .group_by(message_receipts.c.conversation_id, message_receipts.c.recipient_id)
        )
        kept_counts = select(conversation_reads.c.conversation_id, conversation_reads.c.user_id, conversation_reads.c.unread_count)
        async with self.engine.connect() as connection:
            kept = {(c, u): n for c, u, n in await connection.execute(kept_counts) if n}
            counted = {(c, r): n for c, r, n in await connection.execute(unread_receipts)}
        return kept, counted

    async def log(self, user: UUID, type: EventType | None = None) -> list[UserEvent]:
        events = (await SqlUserEventReader(self.engine).read_after(user, 0, 500))[1]
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        return [event for event in events if type is None or event.type is type]


@pytest.fixture
def scene(engine: AsyncEngine) -> Scene:
    return Scene(engine)


async def test_sent_messages_are_numbered_unread_by_their_recipients_and_told_to_every_member(scene: Scene) -> None:
    alice, bob, carol = await scene.users(3)
    team = await scene.conversation([alice, bob, carol])
    first, second = await scene.send(team, alice), await scene.send(team, carol, to=bob)

    async with scene.engine.connect() as connection:
        positions = dict((await connection.execute(select(messages.c.id, messages.c.position))).all())
        counters = (await connection.execute(select(conversations.c.message_count, conversations.c.last_message_id))).one()
    assert positions == {first.id: 1, second.id: 2} and tuple(counters) == (2, second.id)
    kept, counted = await scene.unread_and_recount()
    assert kept == counted == {(team.id, bob): 2, (team.id, carol): 1}
    async with scene.uow() as tx:
        assert {receipt.recipient_id for receipt in await tx.receipts.for_message(first.id)} == {bob, carol}
        horizons = await tx.read_horizons.for_member(bob, [team.id, uuid4()])
    assert list(horizons) == [team.id] and horizons[team.id].unread_count == 2
    for member in (alice, bob, carol):
        created = await scene.log(member)
        assert [(event.type, event.data["message_id"]) for event in created] == [
            (EventType.MESSAGE_CREATED, str(first.id)),
            (EventType.MESSAGE_CREATED, str(second.id)),
        ]
        assert created[1].data["to"] == str(bob) and created[1].data["from"] == str(carol)


async def test_reading_marks_receipts_moves_the_horizon_and_a_message_read_by_all_becomes_read(scene: Scene) -> None:
    alice, bob, carol = await scene.users(3)
    team = await scene.conversation([alice, bob, carol])
    first, second, third = [await scene.send(team, alice) for _ in range(3)]
    async with scene.uow() as tx:
        stored = (await tx.messages.get_many([first.id], for_update=True))[first.id]
        stored.record_delivery("sms", delivered=True, now=scene.clock.now())
        await tx.messages.update_many([stored])
        await tx.commit()

    bob_read = await scene.mark_read.execute(bob, team.id, second.id)
    assert bob_read.advanced and (bob_read.horizon.position, bob_read.horizon.unread_count) == (2, 1)
    assert not (await scene.mark_read.execute(bob, team.id, first.id)).advanced  # older: changes nothing
    await scene.mark_read.execute(carol, team.id, first.id)

    async with scene.uow() as tx:
        read = await tx.messages.get(first.id)
        pending = await tx.messages.get(second.id)
        receipts = {receipt.recipient_id: receipt for receipt in await tx.receipts.for_message(first.id)}
    assert read is not None and read.status is MessageStatus.READ and read.read_by_all_at is not None
    assert pending is not None and pending.read_by_all_at is None and pending.status is MessageStatus.ACCEPTED
    assert all(receipt.read_at is not None and receipt.delivered_at is not None for receipt in receipts.values())
    kept, counted = await scene.unread_and_recount()
    assert kept == counted == {(team.id, bob): 1, (team.id, carol): 2}
    for member in (alice, bob, carol):
        reads = await scene.log(member, EventType.CONVERSATION_READ)
        assert [(event.data["reader_id"], event.data["position"]) for event in reads] == [(str(bob), 2), (str(carol), 1)]
    (status,) = await scene.log(alice, EventType.MESSAGE_STATUS)
    assert status.data["message_id"] == str(first.id) and status.data["status"] == "read"
    assert await scene.log(bob, EventType.MESSAGE_STATUS) == [] and third.status is MessageStatus.ACCEPTED


async def test_a_read_by_all_before_the_channels_answered_is_kept_until_they_do(scene: Scene) -> None:
    alice, bob = await scene.users(2)
    chat = await scene.conversation([alice, bob])
    message = await scene.send(chat, alice)
    await scene.mark_read.execute(bob, chat.id, message.id)
    async with scene.uow() as tx:
        stored = (await tx.messages.get_many([message.id], for_update=True))[message.id]
        assert stored.read_by_all_at is not None and stored.status is MessageStatus.ACCEPTED
        stored.record_delivery("sms", delivered=True, now=scene.clock.now())
        await tx.messages.update_many([stored])
        await tx.commit()
    async with scene.uow() as tx:
        loaded = await tx.messages.get(message.id)
    assert loaded is not None and loaded.status is MessageStatus.READ


async def test_history_pages_are_ranges_of_positions(scene: Scene) -> None:
    alice, bob = await scene.users(2)
    chat = await scene.conversation([alice, bob])
    sent = [await scene.send(chat, alice if index % 2 else bob) for index in range(12)]
    history = ReadHistory(scene.uow)

    newest = await history.page(bob, chat.id, PageRequest(5, offset=10))
    assert [message.id for message in newest.messages] == [message.id for message in sent[10:]]
    assert newest.total == 12 and newest.links.after is None
    older = await history.page(bob, chat.id, PageRequest(5, before=newest.links.before))
    assert [message.id for message in older.messages] == [message.id for message in sent[5:10]]
    again = await history.page(alice, chat.id, PageRequest(3, after=older.links.after))
    assert [message.id for message in again.messages] == [message.id for message in sent[10:12]]
    assert again.messages[0].deliveries and again.links.after is None


async def test_unread_counts_equal_a_recount_after_concurrent_sends_and_reads(scene: Scene, backend: str) -> None:
    members = await scene.users(4)
    team, pair = await scene.conversation(members), await scene.conversation(members[:2])
    rng = random.Random(7)
    sent: list[tuple[Conversation, Message]] = []

    async def send_some(sender: UUID) -> None:
        for _ in range(6):
            conversation = team if rng.random() < 0.7 or sender not in pair.members else pair
            to = rng.choice([None, *[m for m in conversation.members if m != sender]])
            sent.append((conversation, await scene.send(conversation, sender, to)))

    async def read_some(reader: UUID) -> None:
        for _ in range(6):
            await asyncio.sleep(0)
            mine = [(conversation, message) for conversation, message in sent if reader in conversation.members]
            if mine:
                conversation, message = rng.choice(mine)
                await scene.mark_read.execute(reader, conversation.id, message.id)

    writers = [send_some(member) for member in members]
    readers = [read_some(member) for member in members]
    if backend == "sqlite":
        for work in [*writers, *readers]:
            await work
    else:
        await asyncio.gather(*writers, *readers)
    kept, counted = await scene.unread_and_recount()
    assert kept == counted and sum(counted.values()) > 0
    for member in members:
        created = await scene.log(member, EventType.MESSAGE_CREATED)
        theirs = [message for conversation, message in sent if member in conversation.members]
        assert sorted(event.data["message_id"] for event in created) == sorted(str(message.id) for message in theirs)
