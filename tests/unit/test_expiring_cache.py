"""The in-process cache behind token and membership lookups: bounded, and never past an entry's end."""

from __future__ import annotations

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
