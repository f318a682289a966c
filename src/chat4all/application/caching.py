"""A small in-process cache for facts the hot path would otherwise fetch from the database on
every request (who a bearer token belongs to, who the members of a conversation are)."""

from __future__ import annotations

from collections import OrderedDict
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

    def forget(self, key: Key) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
