"""Wake-ups across processes on real PostgreSQL: a reader waiting on one API process's LISTEN
connection is woken by a commit made on another connection, within milliseconds; a rollback
wakes nobody; a dropped LISTEN connection comes back and wakes every reader to re-read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.caching import ExpiringCache
from chat4all.adapters.sql.event_log import SqlUserEventReader
from chat4all.adapters.sql.postgres.connections import conninfo_of, direct_pool
from chat4all.adapters.sql.postgres.intake import PostgresMessageIntake
from chat4all.adapters.sql.postgres.listener import PostgresEventNotifier
from chat4all.adapters.sql.postgres.listening import PostgresListener
from chat4all.adapters.sql.postgres.live_notices import PostgresLiveNotices
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.events import ReadEvents
from chat4all.application.messaging import SendMessage, SendRequest
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.events import EphemeralEvent, EventQuery, EventType, PendingEvent
from chat4all.domain.messages import Priority
from chat4all.domain.users import User

pytestmark = pytest.mark.services

NOW = datetime(2026, 5, 1, tzinfo=UTC)
PROMPTLY = 0.5  # seconds; a wake-up measured in milliseconds, with room for a loaded machine


class FixedClock:
    def now(self) -> datetime:
        return NOW


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
async def notifier(database_url: str) -> AsyncIterator[PostgresEventNotifier]:
    listener = PostgresListener(database_url)
    notifier = PostgresEventNotifier(listener)
    await listener.start()
    await asyncio.wait_for(notifier.listening.wait(), 5)
    try:
        yield notifier
    finally:
        await listener.stop()


async def users(engine: AsyncEngine, count: int) -> list[UUID]:
    found = [User(uuid4(), f"reader{index}", "h", NOW) for index in range(count)]
    async with SqlUnitOfWorkFactory(engine)() as tx:
        for user in found:
            await tx.users.add(user)
        await tx.commit()
    return [user.id for user in found]


async def append(engine: AsyncEngine, user_ids: list[UUID], *, commit: bool) -> float:
    """Appends an event for each user; returns when the COMMIT was sent (perf_counter)."""
    async with SqlUnitOfWorkFactory(engine)() as tx:
        await tx.events.append([PendingEvent(user, EventType.MESSAGE_CREATED, NOW, {}) for user in user_ids])
        committing = time.perf_counter()
        if commit:
            await tx.commit()
    return committing


async def test_a_commit_on_another_connection_wakes_the_waiting_reader_within_milliseconds(notifier, engine) -> None:
    alice, bob = await users(engine, 2)
    async with notifier.listen(alice) as alice_wakes, notifier.listen(bob) as bob_wakes:
        committing = await append(engine, [alice], commit=True)
        assert await alice_wakes.wait(PROMPTLY)
        latency = time.perf_counter() - committing
        assert not await bob_wakes.wait(0.2)
    print(f"commit to wake-up: {latency * 1000:.1f} ms")


async def test_a_rolled_back_change_wakes_nobody(notifier, engine) -> None:
    (alice,) = await users(engine, 1)
    async with notifier.listen(alice) as wakes:
        await append(engine, [alice], commit=False)
        assert not await wakes.wait(0.3)
        await append(engine, [alice], commit=True)
        assert await wakes.wait(PROMPTLY)


async def test_many_users_woken_by_one_commit_each_hear_it(notifier, engine) -> None:
    """More users than one notification's payload holds."""
    many = await users(engine, 450)
    async with notifier.listen(many[0]) as first, notifier.listen(many[-1]) as last:
        await append(engine, many, commit=True)
        assert await first.wait(PROMPTLY) and await last.wait(PROMPTLY)


async def test_after_its_connection_drops_the_notifier_comes_back_and_wakes_every_reader(notifier, engine, database_url) -> None:
    (alice,) = await users(engine, 1)
    async with notifier.listen(alice) as wakes:
        with psycopg.connect(conninfo_of(database_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'chat4all-events' AND datname = current_database()"
            )
        assert await wakes.wait(5)  # woken on reconnecting: events may have been committed meanwhile
        await asyncio.wait_for(notifier.listening.wait(), 5)
        await append(engine, [alice], commit=True)
        assert await wakes.wait(PROMPTLY)


async def test_a_long_poll_on_one_process_gets_a_message_accepted_through_another(notifier, engine, database_url) -> None:
    alice, bob = await users(engine, 2)
    chat = Conversation.start(
        conversation_id=uuid4(), type=ConversationType.PRIVATE, members=[alice, bob], creator=alice,
        metadata=ConversationMetadata(), now=NOW,
    )
    async with SqlUnitOfWorkFactory(engine)() as tx:
        await tx.conversations.add(chat)
        await tx.commit()
    poll = ReadEvents(SqlUserEventReader(engine), notifier)
    waiting = asyncio.create_task(poll.execute(bob, EventQuery(since=0, timeout=30)))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    pool = direct_pool(database_url, max_connections=2)  # the other API process's statements
    await pool.open()
    try:
        send = SendMessage(SqlUnitOfWorkFactory(engine), FixedClock(), ("sms",), intake=PostgresMessageIntake(pool), caches=ExpiringCache)
        request = SendRequest(uuid4(), chat.id, alice, None, ("sms",), "over there", None, Priority.NORMAL)
        sent_at = time.perf_counter()
        message = await send.execute(alice, request)
        batch = await asyncio.wait_for(waiting, PROMPTLY)
        print(f"accept to long-poll answer: {(time.perf_counter() - sent_at) * 1000:.1f} ms")
    finally:
        await pool.close()
    assert [(event.seq, event.type, event.data["message_id"]) for event in batch.events] == [
        (1, EventType.MESSAGE_CREATED, str(message.id))
    ]
    assert batch.next == 1


async def test_one_listening_connection_serves_wake_ups_and_notices_and_both_come_back_after_a_drop(engine, database_url) -> None:
    """One API process (a notifier and live notices on one listener) hears a commit and a typing
    notice published by another process, on a single LISTEN connection, before and after it drops."""
    (alice,) = await users(engine, 1)
    listener = PostgresListener(database_url)
    notifier, notices = PostgresEventNotifier(listener), PostgresLiveNotices(listener, engine)
    other = PostgresLiveNotices(PostgresListener(database_url), engine)  # another process: publishes only
    heard: list[EphemeralEvent] = []
    await listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 5)
        with psycopg.connect(conninfo_of(database_url), autocommit=True) as admin:
            listening = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chat4all-events' AND datname = current_database()"
            ).fetchone()
            assert listening == (1,)
        for round_ in range(2):
            async with notifier.listen(alice) as wakes:
                with notices.subscribe(alice, heard.append):
                    await wakes.wait(0)  # (the wake-up every reader gets when the connection is back)
                    await append(engine, [alice], commit=True)
                    assert await wakes.wait(PROMPTLY)
                    await other.publish([alice], EphemeralEvent(EventType.TYPING, NOW, {"n": round_}))
                    await asyncio.sleep(PROMPTLY)
            assert [event.data["n"] for event in heard] == list(range(round_ + 1))
            with psycopg.connect(conninfo_of(database_url), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'chat4all-events' AND datname = current_database()"
                )
            for _ in range(50):  # until the listener noticed the drop
                if not listener.listening.is_set():
                    break
                await asyncio.sleep(0.05)
            await asyncio.wait_for(listener.listening.wait(), 5)
    finally:
        await listener.stop()
