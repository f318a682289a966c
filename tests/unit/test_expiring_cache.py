"""The in-process cache behind token and membership lookups: bounded, and never past an entry's end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat4all.application.caching import ExpiringCache

NOW = datetime(2026, 1, 1, tzinfo=UTC)


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
    loads = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        cache.put("a", 42)
        return 42

    waiting = [asyncio.ensure_future(cache.get_or_load("a", NOW, load)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()

    assert await asyncio.gather(*waiting) == [42] * 20
    assert loads == 1
    assert await cache.get_or_load("a", NOW, load) == 42 and loads == 1  # kept: no second load


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
