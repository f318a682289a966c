"""A small in-process cache for facts the hot path would otherwise fetch from the database on
every request (who a bearer token belongs to, who the members of a conversation are)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


class _Entry(NamedTuple, Generic[Value]):
    value: Value
    until: datetime | None
    refresh_at: datetime | None


class ExpiringCache(Generic[Key, Value]):
    """Least-recently-used entries beyond `max_entries` are dropped; each entry may carry the moment
    it stops being valid (`until`), after which it is treated as absent, and the earlier moment from
    which `get_or_load` should reload it in the background (`refresh_at`)."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._entries: OrderedDict[Key, _Entry[Value]] = OrderedDict()
        self._loading: dict[Key, asyncio.Future[Value]] = {}
        # Loads under way when their key was forgotten: what they read may predate the reason.
        self._stale_loads: set[asyncio.Future[Value]] = set()

    def get(self, key: Key, now: datetime) -> Value | None:
        entry = self._valid_entry(key, now)
        return None if entry is None else entry.value

    def put(self, key: Key, value: Value, until: datetime | None = None, refresh_at: datetime | None = None) -> None:
        if _current_task() in self._stale_loads:
            return  # what this load read may predate the reason it was forgotten (see `forget`)
        self._entries[key] = _Entry(value, until, refresh_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def get_or_load(self, key: Key, now: datetime, load: Callable[[], Awaitable[Value]]) -> Value:
        """`get`, or else `load()` (which `put`s what may be kept). Callers that miss the same key
        while it loads wait for that one load: when a busy entry expires, the requests that were
        using it cost one query, not one each (measured as a burst of slow requests every few
        seconds before). A failed load fails its waiters, and the next miss tries again.

        An entry past its `refresh_at` is still returned at once, and one `load()` for it starts in
        the background, so nobody waits for the database while the entry is still valid. That load
        is the same single flight a miss would wait for. If it fails, the entry stays as it was
        until its `until` (the loader may `forget` it, e.g. when it learnt the value is wrong), and
        the next caller past `refresh_at` tries again."""
        entry = self._valid_entry(key, now)
        if entry is not None:
            if entry.refresh_at is not None and now >= entry.refresh_at and key not in self._loading:
                self._start_load(key, load)
            return entry.value
        loading = self._loading.get(key) or self._start_load(key, load)
        # Shielded: a caller that goes away (its client hung up) must not cancel the others' load.
        return await asyncio.shield(loading)

    def forget(self, key: Key) -> None:
        """Drops the entry, and whatever a load of it already under way would put: that load may
        have read the value before the change that made the caller forget it (a logout racing a
        background refresh of its token would otherwise bring the token back to life). Callers
        arriving afterwards do not join that load either; they start a fresh one."""
        self._entries.pop(key, None)
        stale = self._loading.pop(key, None)
        if stale is not None:
            self._stale_loads.add(stale)

    def __len__(self) -> int:
        return len(self._entries)

    def _valid_entry(self, key: Key, now: datetime) -> _Entry[Value] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.until is not None and now >= entry.until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _start_load(self, key: Key, load: Callable[[], Awaitable[Value]]) -> asyncio.Future[Value]:
        loading = self._loading[key] = asyncio.ensure_future(load())
        loading.add_done_callback(lambda done: self._finished(key, done))
        return loading

    def _finished(self, key: Key, done: asyncio.Future[Value]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        self._stale_loads.discard(done)
        # A background refresh has no caller to await it, nor does a load whose waiters all went
        # away: marking the outcome as seen here keeps asyncio from logging "exception was never
        # retrieved" for it. Waiters that do await the load still get the exception.
        if not done.cancelled():
            done.exception()


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop running: not inside a load
        return None
