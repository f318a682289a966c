"""The `Cache` port in the process's memory: least recently used entries go first, loads run once
per key however many callers miss it, and entries past their refresh point reload in the background."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")

# After a background refresh of an entry fails, the entry is not refreshed again for this long,
# twice as long after each further failure, up to the last (see `get_or_load`).
FIRST_REFRESH_BACKOFF = timedelta(seconds=0.25)
LAST_REFRESH_BACKOFF = timedelta(seconds=30)


class _Entry(NamedTuple, Generic[Value]):
    value: Value
    until: datetime | None
    refresh_at: datetime | None
    failed_refreshes: int = 0  # in a row, since the entry was put
    # No refresh before this moment. After a failure it is None until a caller sees the entry
    # again: the cache has no clock of its own, and the back-off counts from that caller's `now`.
    retry_at: datetime | None = None


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
        # Keys whose entry was put or read since the last `take_used`; no more of them than entries, so
        # a cache nobody asks does not grow with them.
        self._used: set[Key] = set()
        self._closed = False

    def get(self, key: Key, now: datetime) -> Value | None:
        entry = self._valid_entry(key, now)
        return None if entry is None else entry.value

    def put(self, key: Key, value: Value, until: datetime | None = None, refresh_at: datetime | None = None) -> None:
        if _current_task() in self._stale_loads:
            return  # what this load read may predate the reason it was forgotten (see `forget`)
        self._entries[key] = _Entry(value, until, refresh_at)
        self._entries.move_to_end(key)
        self._mark_used(key)  # a load's put: its caller's use
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
        no refresh of it starts for a back-off that counts from the next caller's `now`:
        FIRST_REFRESH_BACKOFF, doubling after each further failure up to LAST_REFRESH_BACKOFF, and
        never more than half the entry's remaining life (but at least FIRST_REFRESH_BACKOFF), so a
        refresh is still tried before the entry ends. Without it, during a database outage every
        request on a cached key past its refresh point started another lookup bound to fail. At
        `until` the entry is gone as always: the next caller waits for a load and sees it fail."""
        entry = self._valid_entry(key, now)
        if entry is not None:
            if self._refresh_due(key, entry, now):
                self._start_load(key, load, refreshing=entry)
            return entry.value
        loading = self._loading.get(key) or self._start_load(key, load)
        # Shielded: a caller that goes away (its client hung up) must not cancel the others' load.
        return await asyncio.shield(loading)

    def take_used(self) -> set[Key]:
        """The keys whose entries were put or read since the last call."""
        used, self._used = self._used, set()
        return used

    def prolong(self, key: Key, until: datetime, refresh_at: datetime | None = None) -> None:
        """Moves a present entry's end (and refresh point) to these, if later; an absent entry (never
        put, ended, or forgotten meanwhile: a logout racing the check that prolongs it) stays absent."""
        entry = self._entries.get(key)
        if entry is None or (entry.until is not None and until <= entry.until):
            return
        later_refresh = refresh_at if entry.refresh_at is None or refresh_at is None else max(refresh_at, entry.refresh_at)
        self._entries[key] = _Entry(entry.value, until, later_refresh)

    def forget(self, key: Key) -> None:
        """Drops the entry, and whatever a load of it already under way would put: that load may
        have read the value before the change that made the caller forget it (a logout racing a
        background refresh of its token would otherwise bring the token back to life). Callers
        arriving afterwards do not join that load either; they start a fresh one."""
        self._entries.pop(key, None)
        stale = self._loading.pop(key, None)
        if stale is not None:
            self._stale_loads.add(stale)

    async def close(self) -> None:
        """Cancels the loads still under way and waits for them to end; no background refresh
        starts afterwards (misses still load). For a process shutting down: a refresh nobody
        awaits would otherwise outlive what it reads from, or be destroyed pending with the loop."""
        self._closed = True
        loads = {*self._loading.values(), *self._stale_loads}
        for loading in loads:
            loading.cancel()
        await asyncio.gather(*loads, return_exceptions=True)

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
        self._mark_used(key)
        return entry

    def _mark_used(self, key: Key) -> None:
        if len(self._used) < self._max_entries:
            self._used.add(key)

    def _refresh_due(self, key: Key, entry: _Entry[Value], now: datetime) -> bool:
        if self._closed or entry.refresh_at is None or now < entry.refresh_at or key in self._loading:
            return False
        if entry.failed_refreshes and entry.retry_at is None:
            # The first caller since the last refresh failed: the back-off starts now.
            wait = _refresh_backoff(entry.failed_refreshes, now, entry.until)
            self._entries[key] = entry._replace(retry_at=now + wait)
            return False
        return entry.retry_at is None or now >= entry.retry_at

    def _start_load(
        self, key: Key, load: Callable[[], Awaitable[Value]], refreshing: _Entry[Value] | None = None
    ) -> asyncio.Future[Value]:
        loading = self._loading[key] = asyncio.ensure_future(load())
        loading.add_done_callback(lambda done: self._finished(key, done, refreshing))
        return loading

    def _finished(self, key: Key, done: asyncio.Future[Value], refreshed: _Entry[Value] | None) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        self._stale_loads.discard(done)
        if done.cancelled():
            return
        # A background refresh has no caller to await it, nor does a load whose waiters all went
        # away: marking the outcome as seen here keeps asyncio from logging "exception was never
        # retrieved" for it. Waiters that do await the load still get the exception.
        if done.exception() is not None and refreshed is not None and self._entries.get(key) is refreshed:
            # Still the entry this refresh was for (not put anew, forgotten or ended meanwhile).
            self._entries[key] = refreshed._replace(failed_refreshes=refreshed.failed_refreshes + 1, retry_at=None)


def _refresh_backoff(failures: int, now: datetime, until: datetime | None) -> timedelta:
    wait = min(FIRST_REFRESH_BACKOFF * 2 ** min(failures - 1, 16), LAST_REFRESH_BACKOFF)
    if until is not None:
        wait = min(wait, (until - now) / 2)
    return max(wait, FIRST_REFRESH_BACKOFF)


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop running: not inside a load
        return None
