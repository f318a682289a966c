"""Caches: facts the hot path would otherwise fetch from the database on every request (who a
bearer token belongs to, who the members of a conversation are), kept in the process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


class Cache(Protocol[Key, Value]):
    """Bounded; an entry may carry the moment it stops being valid (`until`), after which it is
    absent, and an earlier moment from which `get_or_load` reloads it in the background (`refresh_at`)."""

    def get(self, key: Key, now: datetime) -> Value | None: ...

    def put(self, key: Key, value: Value, until: datetime | None = None, refresh_at: datetime | None = None) -> None: ...

    async def get_or_load(self, key: Key, now: datetime, load: Callable[[], Awaitable[Value]]) -> Value:
        """`get`, or else `load()` (which `put`s what may be kept); callers missing the same key
        while it loads wait for that one load."""
        ...

    def take_used(self) -> set[Key]:
        """The keys whose entries were put or read since the last call."""
        ...

    def prolong(self, key: Key, until: datetime, refresh_at: datetime | None = None) -> None:
        """Moves a present entry's end (and refresh point) to these, if later; absent stays absent."""
        ...

    def forget(self, key: Key) -> None:
        """Drops the entry, and whatever a load of it already under way would put."""
        ...

    async def close(self) -> None:
        """Cancels the loads under way; no background refresh starts afterwards."""
        ...


class CacheFactory(Protocol):
    """Makes an empty cache that holds at most `max_entries` entries."""

    def __call__(self, max_entries: int) -> Cache[Any, Any]: ...
