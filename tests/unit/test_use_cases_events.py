"""Long polls over a user's event log, and retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import pytest

from chat4all.application.events import PurgeEvents, ReadEvents
from chat4all.domain.events import CursorExpired, EventQuery, EventType, PendingEvent
from tests.fakes import InMemoryEventNotifier, InMemoryUnitOfWorkFactory, ManualClock

ALICE, BOB = UUID(int=1), UUID(int=2)
PROMPTLY = 2.0  # seconds; a wait that should end at once ends well within this


class Scene:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.uow = InMemoryUnitOfWorkFactory()
        self.notifier = InMemoryEventNotifier()
        self.read = ReadEvents(self.uow.reader, self.notifier)

    async def append(self, user: UUID, count: int = 1, *, notify: bool = True) -> None:
        async with self.uow() as uow:
            await uow.events.append(
                [PendingEvent(user, EventType.MESSAGE_CREATED, self.clock.now(), {"n": n}) for n in range(count)]
            )
            await uow.commit()
        if notify:
            self.notifier.notify([user])


@pytest.fixture
def scene() -> Scene:
    return Scene()


def seqs(batch) -> list[int]:
    return [event.seq for event in batch.events]


async def test_events_after_the_cursor_come_at_once_up_to_the_limit(scene):
    await scene.append(ALICE, 5)
    await scene.append(BOB, 2)
    batch = await scene.read.execute(ALICE, EventQuery(since=1, limit=3, timeout=30))
    assert seqs(batch) == [2, 3, 4] and batch.next == 4
    batch = await scene.read.execute(ALICE, EventQuery(since=batch.next, limit=3, timeout=30))
    assert seqs(batch) == [5] and batch.next == 5
    assert scene.notifier.listening(ALICE) == 0


async def test_without_a_cursor_reading_starts_from_now(scene):
    await scene.append(ALICE, 3)
    batch = await scene.read.execute(ALICE, EventQuery(since=None, timeout=0))
    assert batch.events == [] and batch.next == 3


async def test_a_cursor_ahead_of_the_log_is_moved_back_to_its_end(scene):
    await scene.append(ALICE, 3)
    batch = await scene.read.execute(ALICE, EventQuery(since=40, timeout=0))
    assert batch.events == [] and batch.next == 3
    await scene.append(ALICE)
    assert seqs(await scene.read.execute(ALICE, EventQuery(since=batch.next))) == [4]


async def test_a_wait_ends_as_soon_as_an_event_comes(scene):
    waiting = asyncio.create_task(scene.read.execute(ALICE, EventQuery(since=0, timeout=30)))
    await asyncio.sleep(0.01)
    assert not waiting.done() and scene.notifier.listening(ALICE) == 1
    await scene.append(BOB)  # someone else's event does not end it
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await scene.append(ALICE, 2)
    batch = await asyncio.wait_for(waiting, PROMPTLY)
    assert seqs(batch) == [1, 2] and batch.next == 2
    assert scene.notifier.listening(ALICE) == 0


async def test_a_wait_with_nothing_coming_answers_empty_after_the_timeout(scene):
    await scene.append(ALICE, 2)
    batch = await asyncio.wait_for(scene.read.execute(ALICE, EventQuery(since=2, timeout=0.05)), PROMPTLY)
    assert batch.events == [] and batch.next == 2


async def test_a_wake_up_without_new_events_keeps_waiting(scene):
    waiting = asyncio.create_task(scene.read.execute(ALICE, EventQuery(since=0, timeout=30)))
    await asyncio.sleep(0.01)
    scene.notifier.notify([ALICE])
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await scene.append(ALICE)
    assert seqs(await asyncio.wait_for(waiting, PROMPTLY)) == [1]


async def test_an_event_committed_between_the_read_and_the_wait_still_ends_it(scene):
    reader, read_after = scene.uow.reader, scene.uow.reader.read_after

    async def read_then_an_event_lands(user_id, after, limit):
        found = await read_after(user_id, after, limit)
        if reader.reads == 1:
            await scene.append(ALICE)
        return found

    reader.read_after = read_then_an_event_lands
    batch = await asyncio.wait_for(scene.read.execute(ALICE, EventQuery(since=0, timeout=30)), PROMPTLY)
    assert seqs(batch) == [1]


async def test_a_cancelled_wait_stops_listening(scene):
    waiting = asyncio.create_task(scene.read.execute(ALICE, EventQuery(since=0, timeout=30)))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert scene.notifier.listening(ALICE) == 0


async def test_a_cursor_older_than_what_is_kept_has_expired(scene):
    await scene.append(ALICE, 3)
    scene.clock.advance(timedelta(days=8))
    await scene.append(ALICE, 2)
    assert await PurgeEvents(scene.uow.reader, scene.clock).execute() == 3
    with pytest.raises(CursorExpired) as expired:
        await scene.read.execute(ALICE, EventQuery(since=1, timeout=30))
    assert expired.value.resume_from == 5
    assert seqs(await scene.read.execute(ALICE, EventQuery(since=3))) == [4, 5]


async def test_retention_drops_old_events_in_batches_and_seqs_go_on(scene):
    await scene.append(ALICE, 7)
    await scene.append(BOB, 4)
    scene.clock.advance(timedelta(days=7, seconds=1))
    purge = PurgeEvents(scene.uow.reader, scene.clock, batch=3)
    assert await purge.execute() == 11
    assert await purge.execute() == 0
    await scene.append(ALICE)
    assert seqs(await scene.read.execute(ALICE, EventQuery(since=7))) == [8]


async def test_retention_keeps_what_is_younger_than_the_retention_period(scene):
    await scene.append(ALICE, 2)
    scene.clock.advance(timedelta(days=6, hours=23))
    assert await PurgeEvents(scene.uow.reader, scene.clock).execute() == 0
    assert seqs(await scene.read.execute(ALICE, EventQuery(since=0))) == [1, 2]


async def test_a_page_that_does_not_start_right_after_the_cursor_is_never_served(scene):
    """Events dropped between reading the bounds and the page (an adapter reading them apart)."""
    await scene.append(ALICE, 5)
    reader, read_after = scene.uow.reader, scene.uow.reader.read_after

    async def purged_meanwhile(user_id, after, limit):
        bounds, events = await read_after(user_id, after, limit)
        return bounds, events[2:]

    reader.read_after = purged_meanwhile
    with pytest.raises(CursorExpired):
        await scene.read.execute(ALICE, EventQuery(since=0))


async def test_a_cursor_ahead_of_stale_bounds_never_skips_the_events_numbered_after_them(scene):
    """The cursor is past the end of the log, and events up to beyond it are committed between
    reading the bounds and the page: serving them would skip those numbered in between."""
    await scene.append(ALICE, 3)
    reader, read_after = scene.uow.reader, scene.uow.reader.read_after

    async def stale_bounds(user_id, after, limit):
        bounds = await reader.bounds(user_id)
        await scene.append(ALICE, 10, notify=False)
        return bounds, (await read_after(user_id, after, limit))[1]

    reader.read_after = stale_bounds
    batch = await scene.read.execute(ALICE, EventQuery(since=5))
    assert batch.events == [] and batch.next == 3
