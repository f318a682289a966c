"""The in-process cache behind token and membership lookups: bounded, and never past an entry's end."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat4all.adapters.caching import ExpiringCache
from tests.unit.cache_loads import NOW, REFRESH_AT, UNTIL, GatedLoad


def test_an_entry_is_absent_from_the_moment_it_ends():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=NOW + timedelta(seconds=5))
    assert cache.get("a", NOW + timedelta(seconds=4, microseconds=999_999)) == 1
    assert cache.get("a", NOW + timedelta(seconds=5)) is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_is_dropped_first():
    cache: ExpiringCache[str, int] = ExpiringCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a", NOW) == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a", NOW), cache.get("b", NOW), cache.get("c", NOW)) == (1, None, 3)


def test_forget_removes_an_entry_and_ignores_unknown_keys():
    cache: ExpiringCache[str, int] = ExpiringCache(2)
    cache.put("a", 1)
    cache.forget("a")
    cache.forget("never")
    assert cache.get("a", NOW) is None


def test_a_cache_must_hold_something():
    with pytest.raises(ValueError):
        ExpiringCache(0)


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3)), max_size=200), st.integers(1, 8))
def test_it_never_holds_more_than_its_size_nor_a_wrong_value(operations, size):
    cache: ExpiringCache[int, int] = ExpiringCache(size)
    latest: dict[int, int] = {}
    for key, value in operations:
        cache.put(key, value)
        latest[key] = value
        assert len(cache) <= size
        assert cache.get(key, NOW) == value
    for key, value in latest.items():
        assert cache.get(key, NOW) in (None, value)


async def test_callers_missing_the_same_key_share_one_load():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    load = GatedLoad(42, then=lambda: cache.put("a", 42))

    waiting = [asyncio.ensure_future(cache.get_or_load("a", NOW, load)) for _ in range(20)]
    await asyncio.sleep(0)
    load.release.set()

    assert await asyncio.gather(*waiting) == [42] * 20
    assert load.calls == 1
    assert await cache.get_or_load("a", NOW, load) == 42 and load.calls == 1  # kept: no second load


async def test_a_failed_load_fails_its_waiters_and_the_next_miss_loads_again():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    attempts = 0

    async def load() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if attempts == 1:
            raise LookupError("not found")
        return 7

    first = await asyncio.gather(*(cache.get_or_load("a", NOW, load) for _ in range(5)), return_exceptions=True)

    assert all(isinstance(outcome, LookupError) for outcome in first) and attempts == 1
    assert await cache.get_or_load("a", NOW, load) == 7 and attempts == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_load_for_the_others():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    release = asyncio.Event()

    async def load() -> int:
        await release.wait()
        return 3

    leaving = asyncio.ensure_future(cache.get_or_load("a", NOW, load))
    staying = asyncio.ensure_future(cache.get_or_load("a", NOW, load))
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()

    assert await staying == 3


async def test_forgetting_a_key_while_it_loads_discards_what_that_load_puts():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=UNTIL, refresh_at=REFRESH_AT)
    release = asyncio.Event()

    async def stale_load() -> int:
        await release.wait()
        cache.put("a", 1, until=UNTIL + timedelta(seconds=5))  # read before the forget
        return 1

    assert await cache.get_or_load("a", REFRESH_AT, stale_load) == 1
    await asyncio.sleep(0)
    cache.forget("a")
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert cache.get("a", REFRESH_AT) is None

    cache.put("a", 2)  # once that load is over, puts count again
    assert cache.get("a", REFRESH_AT) == 2


def test_the_keys_put_or_read_since_the_last_ask_are_reported_once():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=NOW + timedelta(seconds=5))
    cache.put("b", 2, until=NOW + timedelta(seconds=5))
    assert cache.take_used() == {"a", "b"}  # put by a load for its caller
    cache.get("a", NOW)
    cache.get("b", NOW + timedelta(seconds=6))  # ended: not a use
    cache.get("missing", NOW)
    assert cache.take_used() == {"a"}
    assert cache.take_used() == set()


def test_prolonging_only_extends_an_entry_still_present():
    cache: ExpiringCache[str, int] = ExpiringCache(10)
    cache.put("a", 1, until=NOW + timedelta(seconds=5))
    cache.prolong("a", NOW + timedelta(seconds=3))  # never shortened
    assert cache.get("a", NOW + timedelta(seconds=4)) == 1
    cache.prolong("a", NOW + timedelta(seconds=9))
    assert cache.get("a", NOW + timedelta(seconds=8)) == 1
    assert cache.get("a", NOW + timedelta(seconds=9)) is None
    cache.put("b", 2, until=NOW + timedelta(seconds=5))
    cache.forget("b")  # e.g. a logout while the check that prolongs it ran
    cache.prolong("b", NOW + timedelta(seconds=9))
    cache.prolong("never", NOW + timedelta(seconds=9))
    assert cache.get("b", NOW) is None and cache.get("never", NOW) is None
