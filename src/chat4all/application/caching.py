"""A small in-process cache for facts the hot path would otherwise fetch from the database on
every request (who a bearer token belongs to, who the members of a conversation are)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


class ExpiringCache(Generic[Key, Value]):
    """Least-recently-used entries beyond `max_entries` are dropped; each entry may carry the moment
    it stops being valid (`until`), after which it is treated as absent."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._entries: OrderedDict[Key, tuple[Value, datetime | None]] = OrderedDict()
        self._loading: dict[Key, asyncio.Future[Value]] = {}

    def get(self, key: Key, now: datetime) -> Value | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, until = entry
        if until is not None and now >= until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Key, value: Value, until: datetime | None = None) -> None:
        self._entries[key] = (value, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def get_or_load(self, key: Key, now: datetime, load: Callable[[], Awaitable[Value]]) -> Value:
        """`get`, or else `load()` (which `put`s what may be kept). Callers that miss the same key
        while it loads wait for that one load: when a busy entry expires, the requests that were
        using it cost one query, not one each (measured as a burst of slow requests every few
        seconds before). A failed load fails its waiters, and the next miss tries again."""
        value = self.get(key, now)
        if value is not None:
            return value
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(load())
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        # Shielded: a caller that goes away (its client hung up) must not cancel the others' load.
        return await asyncio.shield(loading)

    def forget(self, key: Key) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
