"""A live connection's feed: stored events in seq order from a cursor, then as they come; a bounded
queue (a client that stops taking frames is dropped with a resync, never buffered without end);
ephemeral notices only when there is room; an expired cursor ends it with a resync."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

from chat4all.application.events import ReadEvents
from chat4all.application.live_feed import Ended, FeedLimits, LiveFeed, Resync, ResyncReason
from chat4all.domain.events import EphemeralEvent, EventType, PendingEvent, UserEvent
from tests.fakes import InMemoryEventNotifier, InMemoryUnitOfWorkFactory

ALICE = UUID(int=1)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
SOON = 2.0  # seconds; what should come at once comes well within this


class Log:
    def __init__(self) -> None:
        self.uow = InMemoryUnitOfWorkFactory()
        self.notifier = InMemoryEventNotifier()
        self.events = ReadEvents(self.uow.reader, self.notifier)

    async def append(self, count: int, *, wake: bool = True) -> None:
        async with self.uow() as uow:
            await uow.events.append([PendingEvent(ALICE, EventType.MESSAGE_CREATED, NOW, {"n": n}) for n in range(count)])
            await uow.commit()
        if wake:
            self.notifier.notify([ALICE])

    def feed(self, **limits) -> LiveFeed:
        return LiveFeed(ALICE, self.events, self.notifier, FeedLimits(**limits))


@asynccontextmanager
async def running(feed: LiveFeed, since: int | None):
    feed.resume(since)
    try:
        yield feed
    finally:
        await feed.close()


async def take(feed: LiveFeed, count: int) -> list:
    return [await asyncio.wait_for(feed.next(), SOON) for _ in range(count)]


def seqs(frames) -> list[int]:
    return [frame.seq for frame in frames if isinstance(frame, UserEvent)]


async def test_stored_events_come_in_seq_order_from_the_cursor_then_as_they_are_committed():
    log = Log()
    await log.append(3)
    async with running(log.feed(), since=1) as feed:
        assert seqs(await take(feed, 2)) == [2, 3]
        await log.append(2)
        assert seqs(await take(feed, 2)) == [4, 5]
        assert await feed.next(timeout=0.2) is None


async def test_without_a_cursor_only_what_comes_after_is_sent():
    log = Log()
    await log.append(3)
    async with running(log.feed(), since=None) as feed:
        assert await feed.next(timeout=0.2) is None
        await log.append(1)
        assert seqs(await take(feed, 1)) == [4]


async def test_a_lost_wake_up_delays_an_event_but_does_not_lose_it():
    log = Log()
    async with running(log.feed(recheck=0.3), since=0) as feed:
        await log.append(1, wake=False)
        assert seqs(await take(feed, 1)) == [1]


async def test_a_feed_resumed_elsewhere_drops_what_was_queued_for_the_old_cursor():
    log = Log()
    await log.append(5)
    async with running(log.feed(), since=0) as feed:
        await asyncio.sleep(0.1)  # the first five are queued
        feed.resume(3)
        assert seqs(await take(feed, 2)) == [4, 5]
        assert await feed.next(timeout=0.2) is None


async def test_a_client_that_stops_taking_frames_gets_a_resync_and_the_queue_never_grows_past_its_bound():
    log = Log()
    await log.append(30)
    async with running(log.feed(queue_size=5, slow_client=0.3), since=0) as feed:
        assert seqs(await take(feed, 2)) == [1, 2]
        peak = 0
        for _ in range(10):  # the client stops taking frames for longer than slow_client
            peak = max(peak, len(feed._frames))
            await asyncio.sleep(0.05)
        assert peak <= 5
        await asyncio.sleep(0.3)
        frames = [await feed.next(timeout=SOON)]
        assert frames == [Resync(ResyncReason.TOO_SLOW, 2, frames[0].detail)]
        assert await feed.next(timeout=0.2) is None  # nothing after it: the transport closes


async def test_a_client_behind_but_taking_frames_is_never_dropped():
    log = Log()
    await log.append(40)
    async with running(log.feed(queue_size=5, slow_client=0.3), since=0) as feed:
        received = []
        for _ in range(40):
            received.append(await feed.next(timeout=SOON))
            await asyncio.sleep(0.01)
        assert seqs(received) == list(range(1, 41))


async def test_an_expired_cursor_ends_the_feed_with_a_resync_naming_where_to_resume():
    log = Log()
    await log.append(4)
    await log.uow.reader.purge_before(NOW + timedelta(seconds=1), 100)
    async with running(log.feed(), since=1) as feed:
        (frame,) = await take(feed, 1)
        assert (frame.reason, frame.resume_from) == (ResyncReason.CURSOR_EXPIRED, 4)
        feed.resume(frame.resume_from)  # after reloading over REST
        await log.append(1)
        assert seqs(await take(feed, 1)) == [5]


async def test_ephemeral_notices_are_sent_when_there_is_room_and_dropped_when_not():
    log = Log()
    await log.append(3)
    typing = EphemeralEvent(EventType.TYPING, NOW, {"conversation_id": "c"})
    async with running(log.feed(queue_size=3), since=0) as feed:
        await asyncio.sleep(0.1)  # three stored events fill the queue
        feed.offer(typing)
        assert seqs(await take(feed, 3)) == [1, 2, 3]
        assert await feed.next(timeout=0.1) is None
        feed.offer(typing)
        assert await take(feed, 1) == [typing]


async def test_ending_a_feed_comes_before_anything_still_queued():
    log = Log()
    await log.append(3)
    ended = Ended("invalid_token", "revoked")
    async with running(log.feed(), since=0) as feed:
        await asyncio.sleep(0.1)
        feed.end(ended)
        assert await take(feed, 2) == [ended, ended]


async def test_a_woken_feed_reads_and_waits_again_without_starting_a_task_per_wake_up():
    """Every live connection is woken once per event it is told of: at 200 messages a second for
    1,000 connections, a task or two per wake-up was a measurable share of the API process."""
    log = Log()
    loop = asyncio.get_running_loop()
    started: list[str] = []
    factory = loop.get_task_factory()

    def counting(loop, coro, **kwargs):
        started.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs) if factory is None else factory(loop, coro, **kwargs)

    async with running(log.feed(), since=0) as feed:
        await log.append(1)
        assert seqs(await take(feed, 1)) == [1]
        loop.set_task_factory(counting)
        try:
            for n in range(2, 7):
                await log.append(1)
                assert seqs([await feed.next(timeout=SOON)]) == [n]
        finally:
            loop.set_task_factory(factory)
    assert started == []
