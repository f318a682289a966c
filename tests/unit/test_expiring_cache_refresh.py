"""Entries of the in-process cache refreshed ahead of their end: one load at a time, a failed refresh
keeps the entry and backs off, closing cancels what runs."""

from __future__ import annotations

import asyncio
import gc
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat4all.adapters.caching import FIRST_REFRESH_BACKOFF, ExpiringCache
from tests.unit.cache_loads import NOW, REFRESH_AT, UNTIL, GatedLoad


async def test_an_entry_past_its_refresh_point_is_served_at_once_while_one_load_runs():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=UNTIL, refresh_at=REFRESH_AT)
    load = GatedLoad(
        2, then=lambda: cache.put("a", 2, until=UNTIL + timedelta(seconds=5), refresh_at=REFRESH_AT + timedelta(seconds=5))
    )

    assert await cache.get_or_load("a", REFRESH_AT - timedelta(microseconds=1), load) == 1
    await asyncio.sleep(0)
    assert load.calls == 0  # not yet due

    # Nobody waits for the database: every one of these returns while the load is still blocked.
    served = await asyncio.wait_for(asyncio.gather(*(cache.get_or_load("a", REFRESH_AT, load) for _ in range(20))), 1)
    await asyncio.sleep(0)
    assert served == [1] * 20 and load.calls == 1

    load.release.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert load.calls == 1
    # The refreshed entry holds until its own end, past the old one, and is not due again yet.
    assert await cache.get_or_load("a", UNTIL + timedelta(seconds=2), load) == 2
    await asyncio.sleep(0)
    assert load.calls == 1
    assert cache.get("a", UNTIL + timedelta(seconds=5)) is None


async def test_a_miss_while_a_refresh_runs_waits_for_that_refresh_instead_of_a_second_load():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=UNTIL, refresh_at=REFRESH_AT)
    load = GatedLoad(2)

    assert await cache.get_or_load("a", REFRESH_AT, load) == 1
    missing = asyncio.ensure_future(cache.get_or_load("a", UNTIL, load))  # the entry has just ended
    await asyncio.sleep(0)
    assert not missing.done()
    load.release.set()
    assert await missing == 2 and load.calls == 1


async def test_a_failed_refresh_keeps_the_entry_until_its_end_and_warns_nobody():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=UNTIL, refresh_at=REFRESH_AT)
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    attempts = 0

    async def load() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        raise ConnectionError("database down")

    try:
        assert await cache.get_or_load("a", REFRESH_AT, load) == 1
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()  # an unretrieved exception is reported when its future is collected
        assert attempts == 1 and reported == []
        assert cache.get("a", UNTIL - timedelta(microseconds=1)) == 1

        # The next caller starts a back-off (see the tests below) and is still served from the
        # entry; the first one past it tries again.
        assert await cache.get_or_load("a", REFRESH_AT + timedelta(seconds=1), load) == 1
        await asyncio.sleep(0)
        assert attempts == 1
        assert await cache.get_or_load("a", REFRESH_AT + timedelta(seconds=1.25), load) == 1
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        assert attempts == 2 and reported == []
        # At its end the entry is gone and the caller sees the failure, as without refreshing.
        with pytest.raises(ConnectionError):
            await cache.get_or_load("a", UNTIL, load)
    finally:
        loop.set_exception_handler(None)


STEP = timedelta(milliseconds=10)


async def refresh_attempts_during_an_outage(until: datetime, watched: timedelta) -> list[float]:
    """When (seconds after NOW) refreshes of an entry due from NOW and valid until `until` are
    tried while every load fails, with a few callers every STEP for the `watched` time."""
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=until, refresh_at=NOW)
    attempts: list[float] = []
    now = NOW

    async def load() -> int:
        attempts.append((now - NOW).total_seconds())
        raise ConnectionError("database down")

    while now < NOW + watched:
        for _ in range(5):
            assert await cache.get_or_load("a", now, load) == 1
        for _ in range(3):
            await asyncio.sleep(0)
        now += STEP
    if now >= until:  # at its end the caller waits for a load, and sees it fail
        with pytest.raises(ConnectionError):
            await cache.get_or_load("a", now, load)
    return attempts


async def test_after_a_failed_refresh_the_next_waits_twice_as_long_each_time():
    # Each back-off counts from the first caller after the failure, one STEP after the attempt.
    attempts = await refresh_attempts_during_an_outage(NOW + timedelta(hours=1), watched=timedelta(seconds=10))
    assert attempts == [0, 0.26, 0.77, 1.78, 3.79, 7.8]


async def test_the_back_off_leaves_room_for_one_more_refresh_before_the_entry_ends():
    # At most half the entry's remaining life, but never less than the first back-off: 0.25, 0.5,
    # then (2 - 0.78) / 2 = 0.61 instead of 1, (2 - 1.4) / 2 = 0.3, then 0.25 twice (the second
    # would end after the entry); at the end, the load of a miss.
    until = NOW + timedelta(seconds=2)
    attempts = await refresh_attempts_during_an_outage(until, watched=timedelta(seconds=2))
    assert attempts == [0, 0.26, 0.77, 1.39, 1.7, 1.96, 2.0]


async def test_a_refresh_that_succeeds_ends_the_back_off():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=UNTIL, refresh_at=REFRESH_AT)
    attempts = 0
    down = True

    async def load() -> int:
        nonlocal attempts
        attempts += 1
        if down:
            raise ConnectionError("database down")
        cache.put("a", 2, until=UNTIL + timedelta(seconds=5), refresh_at=REFRESH_AT + timedelta(seconds=5))
        return 2

    async def served(now: datetime) -> int:
        value = await cache.get_or_load("a", now, load)
        for _ in range(3):
            await asyncio.sleep(0)
        return value

    assert await served(REFRESH_AT) == 1 and attempts == 1
    assert await served(REFRESH_AT) == 1 and attempts == 1  # the back-off starts
    down = False
    assert await served(REFRESH_AT + FIRST_REFRESH_BACKOFF - timedelta(microseconds=1)) == 1 and attempts == 1
    assert await served(REFRESH_AT + FIRST_REFRESH_BACKOFF) == 1 and attempts == 2
    assert cache.get("a", REFRESH_AT + FIRST_REFRESH_BACKOFF) == 2
    # The new entry starts with no back-off: due at its own refresh point, it is refreshed at once.
    assert await served(REFRESH_AT + timedelta(seconds=5)) == 2 and attempts == 3


async def test_closing_cancels_and_awaits_refreshes_under_way_and_starts_no_more():
    # Tasks other tests left on a shared event loop (a test server's handlers) are not this cache's.
    others = asyncio.all_tasks()
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=UNTIL, refresh_at=REFRESH_AT)
    cache.put("b", 1, until=UNTIL, refresh_at=REFRESH_AT)
    load = GatedLoad(2)
    assert await cache.get_or_load("a", REFRESH_AT, load) == 1
    await asyncio.sleep(0)
    cache.forget("a")  # a refresh whose key was forgotten is still under way, and closed too
    assert await cache.get_or_load("b", REFRESH_AT, load) == 1
    await asyncio.sleep(0)
    assert load.calls == 2
    refreshes = [task for task in asyncio.all_tasks() - others if task is not asyncio.current_task()]
    assert len(refreshes) == 2

    await asyncio.wait_for(cache.close(), 1)

    assert all(task.cancelled() for task in refreshes)
    assert await cache.get_or_load("b", REFRESH_AT + timedelta(seconds=1), load) == 1
    await asyncio.sleep(0)
    assert load.calls == 2  # no refresh after closing
    assert await cache.get_or_load("c", REFRESH_AT, lambda: asyncio.sleep(0, result=3)) == 3  # misses still load


async def test_entries_without_a_refresh_point_are_never_reloaded_while_valid():
    # How the membership and conversation caches use it: no end, no refresh point.
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1)
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        return 2

    assert await cache.get_or_load("a", NOW + timedelta(days=365), load) == 1
    await asyncio.sleep(0)
    assert loads == 0


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.integers(0, 5), st.integers(0, 3), st.integers(0, 10), st.integers(0, 10)),
            st.tuples(st.just("forget"), st.integers(0, 5)),
            st.tuples(st.just("advance"), st.integers(0, 4)),
        ),
        max_size=100,
    ),
    st.integers(1, 4),
)
def test_an_entry_is_served_until_its_end_whatever_its_refresh_point(operations, size):
    """A model of what `get` may answer: the latest value put, or nothing (evicted), and never a
    value at or past its end; the refresh point changes none of that."""
    cache: ExpiringCache[int, int] = ExpiringCache(size)
    model: dict[int, tuple[int, datetime]] = {}
    now = NOW
    for operation in operations:
        if operation[0] == "put":
            _, key, value, refresh_in, lasts = operation
            until = now + timedelta(seconds=lasts)
            cache.put(key, value, until=until, refresh_at=min(now + timedelta(seconds=refresh_in), until))
            model[key] = (value, until)
            assert len(cache) <= size
        elif operation[0] == "forget":
            cache.forget(operation[1])
            model.pop(operation[1], None)
        else:
            now += timedelta(seconds=operation[1])
        for key in range(6):
            got = cache.get(key, now)
            if key not in model or now >= model[key][1]:
                assert got is None
            else:
                assert got in (None, model[key][0])
