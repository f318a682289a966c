"""The per-user event log: appending to it inside a unit of work, reading it outside one, and
the wake-ups that tell a waiting reader to read again (see `chat4all.application.events`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

from chat4all.domain.events import LogBounds, PendingEvent, UserEvent


class UserEventLog(Protocol):
    """Appends to users' logs inside a unit of work: the events commit, or roll back, with the change
    that caused them."""

    async def append(self, events: Sequence[PendingEvent]) -> list[tuple[UUID, UserEvent]]:
        """Numbers and stores the events (each user's next seqs, in the order given; see
        `domain.events.number_events`). Each user's counter row is updated in place (`UPDATE ...
        RETURNING`, or an upsert for a user's first event), in `lock_order`, and stays locked until
        the unit of work ends: a user's events are numbered in the order their transactions commit,
        so a reader that has seen seq N never later finds a committed N-1 it skipped. Where readers
        may be in other processes, the adapter also has them woken when the transaction commits."""
        ...


class UserEventReader(Protocol):
    """Reads users' logs and drops old events; outside any unit of work (a long poll holds no transaction)."""

    async def bounds(self, user_id: UUID) -> LogBounds: ...

    async def read_after(self, user_id: UUID, after: int, limit: int) -> tuple[LogBounds, list[UserEvent]]:
        """The user's bounds and up to `limit` of their events with seq > `after`, ascending."""
        ...

    async def read_after_many(
        self, cursors: Sequence[tuple[UUID, int]], limit: int
    ) -> dict[tuple[UUID, int], tuple[LogBounds, list[UserEvent]]]:
        """`read_after` for several (user, after) cursors at once, in one round trip: keyed by cursor."""
        ...

    async def purge_before(self, before: datetime, limit: int) -> int:
        """Drops up to `limit` events older than `before`, and returns how many. Per user only a
        prefix is dropped (every event up to the newest one older than `before`), so what is kept
        is always the tail of the log even when two processes' clocks disagree about `at`. The
        counters stay: a user's next event never reuses a dropped seq."""
        ...


class WakeUp(Protocol):
    async def wait(self, timeout: float) -> bool:
        """Waits until the user may have new events (True) or `timeout` seconds pass (False).
        A notification that came after `listen` was entered and before this call counts."""
        ...

    def set(self) -> None:
        """Wakes this reader as a notification would (its owner learnt of events some other way)."""
        ...


class EventNotifier(Protocol):
    """Wakes the readers waiting for users' events. Only a hint: readers then read the log, which
    is the truth; a lost or spurious wake-up costs a wait or a read, never an event."""

    def listen(self, user_id: UUID) -> AbstractAsyncContextManager[WakeUp]:
        """Listening starts on entry, before the reader reads the log, so an event committed between
        that read and the wait still wakes it."""
        ...

    def notify(self, user_ids: Iterable[UUID]) -> None:
        """Called after the commit of events for `user_ids`; wakes their readers in every process
        they may be in (a notifier whose log adapter wakes them on commit may do nothing here)."""
        ...
