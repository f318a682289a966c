"""In-memory event logs and wake-ups, following the ports' rules, for unit tests."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.domain.events import LogBounds, PendingEvent, UserEvent, lock_order, number_events


@attrs.define
class EventLogState:
    events: dict[UUID, list[UserEvent]] = attrs.field(factory=lambda: defaultdict(list))
    counters: dict[UUID, int] = attrs.field(factory=dict)


class InMemoryUserEventLog:
    """`UserEventLog` over a unit of work's copy of the state (committed with it)."""

    def __init__(self, state: EventLogState) -> None:
        self._state = state
        self.locked: list[list[UUID]] = []  # counters taken per append, in order

    async def append(self, events: Sequence[PendingEvent]) -> list[tuple[UUID, UserEvent]]:
        self.locked.append(lock_order(event.user_id for event in events))
        numbered, counters = number_events(self._state.counters, events)
        for user_id, event in numbered:
            self._state.events[user_id].append(event)
        self._state.counters.update(counters)
        return numbered


class InMemoryUserEventReader:
    """`UserEventReader` over the committed state, read through `state()` each time."""

    def __init__(self, state: Callable[[], EventLogState]) -> None:
        self._state = state
        self.reads = 0

    async def bounds(self, user_id: UUID) -> LogBounds:
        state: EventLogState = self._state()
        kept = state.events.get(user_id) or []
        return LogBounds(kept[0].seq if kept else None, state.counters.get(user_id, 0))

    async def read_after(self, user_id: UUID, after: int, limit: int) -> tuple[LogBounds, list[UserEvent]]:
        self.reads += 1
        state: EventLogState = self._state()
        page = [event for event in state.events.get(user_id, []) if event.seq > after][:limit]
        return await self.bounds(user_id), page

    async def purge_before(self, before: datetime, limit: int) -> int:
        state: EventLogState = self._state()
        dropped = 0
        for events in state.events.values():
            old = [index for index, event in enumerate(events) if event.at < before]
            if old and dropped < limit:
                cut = min(old[-1] + 1, limit - dropped)  # a prefix, even past newer events
                del events[:cut]
                dropped += cut
        return dropped


class _WakeUp:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        self.event.clear()
        return True


class InMemoryEventNotifier:
    """`EventNotifier` within one process: a latched event per listening reader."""

    def __init__(self) -> None:
        self._listeners: dict[UUID, set[_WakeUp]] = defaultdict(set)
        self.notified: list[set[UUID]] = []

    @asynccontextmanager
    async def listen(self, user_id: UUID) -> AsyncIterator[_WakeUp]:
        wakeup = _WakeUp()
        self._listeners[user_id].add(wakeup)
        try:
            yield wakeup
        finally:
            self._listeners[user_id].discard(wakeup)
            if not self._listeners[user_id]:
                del self._listeners[user_id]

    def notify(self, user_ids: Iterable[UUID]) -> None:
        users = set(user_ids)
        self.notified.append(users)
        for user_id in users:
            for wakeup in self._listeners.get(user_id, ()):
                wakeup.event.set()

    def listening(self, user_id: UUID) -> int:
        return len(self._listeners.get(user_id, ()))
