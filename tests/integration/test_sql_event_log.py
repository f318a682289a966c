"""The per-user event log on real databases: numbering in the writing transaction, no event
without its commit, pages after a cursor, retention, and commit order under concurrency."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.event_log import SqlUserEventReader
from chat4all.adapters.sql.tables import user_event_counters
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.domain.events import EventType, LogBounds, PendingEvent
from chat4all.domain.users import User

pytestmark = pytest.mark.services

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def add_users(engine: AsyncEngine, count: int) -> list[UUID]:
    users = [User(uuid4(), f"user{index}", "h", START) for index in range(count)]
    async with SqlUnitOfWorkFactory(engine)() as tx:
        for user in users:
            await tx.users.add(user)
        await tx.commit()
    return [user.id for user in users]


def pending(user: UUID, n: int, at: datetime = START, **data: object) -> PendingEvent:
    return PendingEvent(user, EventType.MESSAGE_CREATED, at, {"n": n, **data})


async def append(engine: AsyncEngine, events: list[PendingEvent], *, commit: bool = True) -> None:
    async with SqlUnitOfWorkFactory(engine)() as tx:
        await tx.events.append(events)
        if commit:
            await tx.commit()


async def test_each_users_events_are_numbered_from_one_in_the_order_given(engine: AsyncEngine) -> None:
    alice, bob = await add_users(engine, 2)
    async with SqlUnitOfWorkFactory(engine)() as tx:
        numbered = await tx.events.append([pending(alice, 0), pending(bob, 1), pending(alice, 2)])
        await tx.commit()
    assert [(user, event.seq, event.data["n"]) for user, event in numbered] == [(alice, 1, 0), (bob, 1, 1), (alice, 2, 2)]
    await append(engine, [pending(bob, 3), pending(bob, 4)])

    reader = SqlUserEventReader(engine)
    bounds, page = await reader.read_after(bob, 0, 10)
    assert bounds == LogBounds(1, 3)
    assert [(event.seq, event.type, event.at, dict(event.data)) for event in page] == [
        (1, EventType.MESSAGE_CREATED, START, {"n": 1}),
        (2, EventType.MESSAGE_CREATED, START, {"n": 3}),
        (3, EventType.MESSAGE_CREATED, START, {"n": 4}),
    ]
    assert [event.seq for event in (await reader.read_after(bob, 1, 1))[1]] == [2]
    assert await reader.bounds(uuid4()) == LogBounds(None, 0)


async def test_the_pages_of_several_cursors_come_from_one_read_each_with_its_own_bounds(engine: AsyncEngine) -> None:
    alice, bob, carol = await add_users(engine, 3)
    await append(engine, [pending(alice, n) for n in range(5)] + [pending(bob, 10)])
    nobody = uuid4()
    pages = await SqlUserEventReader(engine).read_after_many([(alice, 0), (alice, 3), (bob, 1), (carol, 0), (nobody, 0), (alice, 0)], 2)
    assert {cursor: (bounds, [event.data["n"] for event in events]) for cursor, (bounds, events) in pages.items()} == {
        (alice, 0): (LogBounds(1, 5), [0, 1]),
        (alice, 3): (LogBounds(1, 5), [3, 4]),
        (bob, 1): (LogBounds(1, 1), []),
        (carol, 0): (LogBounds(None, 0), []),
        (nobody, 0): (LogBounds(None, 0), []),
    }
    assert [event.seq for event in pages[(alice, 3)][1]] == [4, 5]


async def test_a_rolled_back_change_leaves_no_event_and_takes_its_seqs_back(engine: AsyncEngine) -> None:
    alice, bob = await add_users(engine, 2)
    await append(engine, [pending(alice, 0)])
    await append(engine, [pending(alice, 1), pending(bob, 1)], commit=False)
    reader = SqlUserEventReader(engine)
    assert await reader.bounds(alice) == LogBounds(1, 1) and await reader.bounds(bob) == LogBounds(None, 0)
    await append(engine, [pending(alice, 2), pending(bob, 2)])
    assert [event.data["n"] for event in (await reader.read_after(alice, 0, 10))[1]] == [0, 2]
    assert [event.seq for event in (await reader.read_after(bob, 0, 10))[1]] == [1]


async def test_retention_drops_a_prefix_of_each_log_in_batches_and_keeps_the_counters(engine: AsyncEngine) -> None:
    alice, bob = await add_users(engine, 2)
    await append(engine, [pending(alice, n, START + timedelta(minutes=n)) for n in range(5)])
    # A clock that ran behind: an older time after a newer one. Everything up to it goes.
    await append(engine, [pending(bob, 0, START + timedelta(minutes=1)), pending(bob, 1, START), pending(bob, 2, START + timedelta(hours=1))])
    reader = SqlUserEventReader(engine)
    cutoff = START + timedelta(minutes=3)

    assert await reader.purge_before(cutoff, 2) == 2
    assert await reader.purge_before(cutoff, 2) == 2
    assert await reader.purge_before(cutoff, 2) == 1
    assert await reader.purge_before(cutoff, 2) == 0
    assert await reader.bounds(alice) == LogBounds(4, 5) and await reader.bounds(bob) == LogBounds(3, 3)
    await append(engine, [pending(alice, 5)])
    assert [event.seq for event in (await reader.read_after(alice, 3, 10))[1]] == [4, 5, 6]
    async with engine.connect() as connection:
        counters = dict((await connection.execute(select(user_event_counters))).all())
    assert counters == {alice: 6, bob: 3}


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_concurrent_appends_number_each_users_events_in_commit_order_without_gaps(engine: AsyncEngine) -> None:
    """Forty transactions append for overlapping sets of five users at once, each holding its
    transaction open a little. A reader polling meanwhile must only ever see a gapless prefix of
    each log (it never sees N+1 before N commits), and every pair of transactions is ordered the
    same way in every log they share."""
    users = await add_users(engine, 5)
    rng = random.Random(15)
    plans = [rng.sample(users, rng.randint(1, 5)) for _ in range(40)]
    writing = True

    async def write(index: int, members: list[UUID]) -> None:
        async with SqlUnitOfWorkFactory(engine)() as tx:
            await tx.events.append([pending(user, index, tx=index, k=k) for user in members for k in range(2)])
            await asyncio.sleep(rng.random() / 50)
            await tx.commit()

    async def watch() -> list[list[int]]:
        seen, reader = [], SqlUserEventReader(engine)
        while writing:
            for user in users:
                seen.append([event.seq for event in (await reader.read_after(user, 0, 500))[1]])
            await asyncio.sleep(0)
        return seen

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(write(index, members) for index, members in enumerate(plans)))
    writing = False
    for seqs in await watcher:
        assert seqs == list(range(1, len(seqs) + 1))

    await assert_ordered_alike_in_every_log(engine, users, plans)


async def assert_ordered_alike_in_every_log(engine: AsyncEngine, users: list[UUID], plans: list[list[UUID]]) -> None:
    """Each log is gapless, each transaction's events sit together in the order given, and two
    transactions come in the same order in every log they both wrote to."""
    order: dict[UUID, list[int]] = {}
    reader = SqlUserEventReader(engine)
    for user in users:
        events = (await reader.read_after(user, 0, 500))[1]
        assert [event.seq for event in events] == list(range(1, 2 * sum(user in plan for plan in plans) + 1))
        assert [event.data["k"] for event in events] == [0, 1] * (len(events) // 2)
        order[user] = [event.data["tx"] for event in events[::2]]
    for first in users:
        for second in users:
            shared = [tx for tx in order[first] if tx in order[second]]
            assert shared == [tx for tx in order[second] if tx in order[first]]

