"""The live feeds of one process share their reads of the log: the feeds one notification wakes
are read with one statement, each gets its own cursor's page, and the rules of a single read
(seq order, no gap, no duplicate) hold for each of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID

import pytest

from chat4all.application.events import ReadEvents
from chat4all.application.live_feed import FeedLimits, LiveFeed
from chat4all.application.log_reads import MAX_CURSORS_PER_READ, SharedLogReads
from chat4all.domain.events import EventType, PendingEvent, UserEvent
from tests.fakes import InMemoryEventNotifier, InMemoryUnitOfWorkFactory

NOW = datetime(2026, 12, 1, tzinfo=UTC)
USERS = [UUID(int=n) for n in range(1, 7)]
SOON = 2.0


class Process:
    def __init__(self, **shared) -> None:
        self.uow = InMemoryUnitOfWorkFactory()
        self.notifier = InMemoryEventNotifier()
        self.shared = SharedLogReads(self.uow.reader, **shared)
        self.events = ReadEvents(self.shared, self.notifier)

    async def append(self, users: list[UUID], count: int = 1) -> None:
        async with self.uow() as uow:
            await uow.events.append(
                [PendingEvent(user, EventType.MESSAGE_CREATED, NOW, {"n": n}) for user in users for n in range(count)]
            )
            await uow.commit()
        self.notifier.notify(users)

    def feed(self, user: UUID) -> LiveFeed:
        return LiveFeed(user, self.events, self.notifier, FeedLimits())


async def take(feed: LiveFeed, count: int) -> list[int]:
    frames = [await asyncio.wait_for(feed.next(), SOON) for _ in range(count)]
    return [frame.seq for frame in frames if isinstance(frame, UserEvent)]


async def started(process: Process, users: list[UUID]) -> list[LiveFeed]:
    feeds = [process.feed(user) for user in users]
    for feed in feeds:
        feed.resume(0)
    await asyncio.sleep(0.05)  # each reads its (empty) log once, then waits
    return feeds


async def test_the_feeds_one_notification_wakes_are_read_with_one_statement_each_getting_its_own_events():
    process = Process()
    await process.append([USERS[0]], 2)  # user 0 has two events before the others have any
    feeds = await started(process, USERS)
    assert await take(feeds[0], 2) == [1, 2]
    process.uow.reader.batches.clear()

    await process.append(USERS)
    assert [await take(feed, 1) for feed in feeds] == [[3]] + [[1]] * (len(USERS) - 1)
    assert process.uow.reader.batches == [sorted([(USERS[0], 2)] + [(user, 0) for user in USERS[1:]])]
    for feed in feeds:
        await feed.close()


async def test_connections_of_one_user_at_the_same_cursor_share_one_read():
    process = Process()
    feeds = await started(process, [USERS[0]] * 3)
    process.uow.reader.batches.clear()
    await process.append([USERS[0]], 3)
    assert [await take(feed, 3) for feed in feeds] == [[1, 2, 3]] * 3
    assert process.uow.reader.batches == [[(USERS[0], 0)]]
    for feed in feeds:
        await feed.close()


async def test_reads_asked_for_while_a_batch_is_read_go_together_in_the_next_one():
    process = Process(in_flight=1)
    release = asyncio.Event()
    read_many = process.uow.reader.read_after_many

    async def slow_first(cursors, limit):
        if len(process.uow.reader.batches) == 0:
            await release.wait()
        return await read_many(cursors, limit)

    process.uow.reader.read_after_many = slow_first
    first = asyncio.ensure_future(process.shared.read_after(USERS[0], 0, 10))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(process.shared.read_after(user, 0, 10)) for user in USERS[1:]]
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(first, *later)
    assert process.uow.reader.batches == [[(USERS[0], 0)], sorted((user, 0) for user in USERS[1:])]


async def test_a_batch_never_holds_more_than_its_maximum_of_cursors():
    process = Process()
    users = [UUID(int=n) for n in range(1, MAX_CURSORS_PER_READ + 3)]
    await asyncio.gather(*(process.shared.read_after(user, 0, 10) for user in users))
    assert [len(batch) for batch in process.uow.reader.batches] == [MAX_CURSORS_PER_READ, 2]


async def test_a_failed_read_reaches_every_reader_of_the_batch_and_the_next_read_works():
    process = Process()
    read_many = process.uow.reader.read_after_many

    async def unreachable(cursors, limit):
        raise ConnectionError("database unreachable")

    process.uow.reader.read_after_many = unreachable
    results = await asyncio.gather(*(process.shared.read_after(user, 0, 10) for user in USERS), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    process.uow.reader.read_after_many = read_many
    await process.append([USERS[0]])
    _, events = await process.shared.read_after(USERS[0], 0, 10)
    assert [event.seq for event in events] == [1]


async def test_a_reader_that_stops_waiting_leaves_the_shared_read_to_the_others():
    process = Process()
    await process.append([USERS[0]], 2)
    leaving = asyncio.ensure_future(process.shared.read_after(USERS[0], 0, 10))
    staying = asyncio.ensure_future(process.shared.read_after(USERS[0], 0, 10))
    await asyncio.sleep(0)
    leaving.cancel()
    _, events = await staying
    assert [event.seq for event in events] == [1, 2]
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_feeds_woken_together_while_events_keep_coming_miss_nothing_and_see_nothing_twice():
    process = Process(in_flight=1)
    feeds = await started(process, USERS + USERS)
    for round_ in range(30):
        await process.append(USERS[: 2 + round_ % 5], count=1 + round_ % 3)
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    for feed in feeds:
        expected = process.uow.store.event_counters[feed.user_id]
        assert await take(feed, expected) == list(range(1, expected + 1))
        assert await feed.next(timeout=0.05) is None
        await feed.close()
