"""In-memory event logs following the ports' rules, and a notifier that records what it was told,
for unit tests. (The in-process notifier itself is production code: `chat4all.adapters.notifier`.)"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

from chat4all.adapters.notifier import InProcessEventNotifier
from chat4all.domain.events import LogBounds, PendingEvent, UserEvent, lock_order, number_events
from tests.fakes.store import InMemoryStore, Transaction


class InMemoryUserEventLog:
    """`UserEventLog` inside a unit of work: each user's counter is locked (in `lock_order`) until
    the unit of work ends, as the SQL adapter's counter rows are, and the events commit with it."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._counters = tx.table(tx.store.event_counters)
        self._events = tx.table(tx.store.user_events)
        self.locked: list[list[UUID]] = []  # counters taken per append, in order

    async def append(self, events: Sequence[PendingEvent]) -> list[tuple[UUID, UserEvent]]:
        users = lock_order(event.user_id for event in events)
        self.locked.append(users)
        for user_id in users:
            await self._tx.lock(("event_counter", user_id))
        last = {user_id: self._counters.get(user_id) or 0 for user_id in users}
        numbered, counters = number_events(last, events)
        for user_id in users:
            kept = self._events.get(user_id) or []
            kept += [event for owner, event in numbered if owner == user_id]
            self._events.put(user_id, kept)
            self._counters.put(user_id, counters[user_id])
        return numbered


class InMemoryUserEventReader:
    """`UserEventReader` over the committed state."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.reads = 0
        self.batches: list[list[tuple[UUID, int]]] = []  # the cursors of each read_after_many, in order

    async def bounds(self, user_id: UUID) -> LogBounds:
        kept = self._store.user_events.get(user_id) or []
        return LogBounds(kept[0].seq if kept else None, self._store.event_counters.get(user_id, 0))

    async def read_after(self, user_id: UUID, after: int, limit: int) -> tuple[LogBounds, list[UserEvent]]:
        self.reads += 1
        page = [event for event in self._store.user_events.get(user_id, []) if event.seq > after][:limit]
        return await self.bounds(user_id), page

    async def read_after_many(
        self, cursors: Sequence[tuple[UUID, int]], limit: int
    ) -> dict[tuple[UUID, int], tuple[LogBounds, list[UserEvent]]]:
        self.batches.append(sorted(set(cursors)))
        return {(user_id, after): await self.read_after(user_id, after, limit) for user_id, after in set(cursors)}

    async def purge_before(self, before: datetime, limit: int) -> int:
        dropped = 0
        for events in self._store.user_events.values():
            old = [index for index, event in enumerate(events) if event.at < before]
            if old and dropped < limit:
                cut = min(old[-1] + 1, limit - dropped)  # a prefix, even past newer events
                del events[:cut]
                dropped += cut
        return dropped


class InMemoryEventNotifier(InProcessEventNotifier):
    """The in-process notifier, recording every `notify` call's users."""

    def __init__(self) -> None:
        super().__init__()
        self.notified: list[set[UUID]] = []

    def notify(self, user_ids: Iterable[UUID]) -> None:
        users = set(user_ids)
        self.notified.append(users)
        super().notify(users)
