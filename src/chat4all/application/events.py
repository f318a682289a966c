"""Reading users' event logs: long polls that wait for the next event, and retention.

Design
======

The log is the truth. `user_events` (PK user_id, seq) holds every stored event of every user;
`user_event_counters` holds each user's last seq. Transports (long poll, Server-Sent Events,
WebSocket) only read it, from a cursor, under the same rules (`domain.events`); wake-ups only
tell a reader when to read again. Nothing is lost when a wake-up is: a reader waits at most
its timeout (streams re-read at least every keep-alive period) and then reads the log anyway.

Written with its cause. An event is appended through `uow.events` in the transaction that makes
the change it reports (accepting a message, a read, a channel outcome), as the outbox is: a
committed change always has its events and a rolled-back one never has. Numbering takes each
concerned user's counter row with `UPDATE user_event_counters SET last_seq = last_seq + n ...
RETURNING last_seq` (an upsert for a user's first event), in the same transaction, so:
- the row lock holds other writers for that user until commit: seqs are given in commit order,
  and a reader that has seen N never later finds a committed N-1. (A database sequence would
  not do: values are taken at insert and committed in any order, so a reader could see 18
  before 17 commits, resume from 18 and skip 17 forever.)
- a rolled-back change takes its seqs back: seqs have no gaps, which lets a reader check that
  a page starts right after its cursor (`require_contiguous`) and notice dropped events.
- counters are taken in ascending user id, after any conversation, horizon, message and receipt
  row the transaction locks (see `ports.read_state`), so writers never deadlock.
On PostgreSQL's one-statement intake this is one more CTE: an `INSERT ... ON CONFLICT DO UPDATE
... RETURNING` over the recipients sorted by id, then the events inserted at `last_seq - n + k`.
A user in many busy conversations makes those commits take turns on their counter row: the
price of one order per user, paid per batch under group commit.

Fan-out across processes: PostgreSQL LISTEN/NOTIFY, as a wake-up carrying user ids, not data.
Writers add `SELECT pg_notify('chat4all_events', '<id>,<id>,...')` to the transaction that
appends the events: PostgreSQL delivers it only at commit, so nobody is woken before the events
are visible and a rolled-back change wakes nobody. Payloads stay below its 8000-byte limit by
sending at most 200 ids per notification. Each API process keeps one connection LISTENing and
turns notifications into local `EventNotifier.notify` calls; when that connection drops it wakes
every local reader once it is back (they re-read; nothing is missed). Workers write to the
same database, so the events their deliveries cause reach API processes the same way. This
needs no new server, and the database already orders and keeps the events; a Kafka topic would
need a consumer per API process (no shared group) and still a read of the database to fill
gaps. The embedded profile uses the in-process notifier alone.

Retention: events older than `retention` (default 7 days) are dropped in batches by
`PurgeEvents`, per user only a prefix of the log, counters kept. A cursor older than what is
kept answers `cursor_expired` (HTTP 410; a `resync` frame on streams) with the seq to resume
from after reloading over REST.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import attrs

from chat4all.application.ports import Clock, EventNotifier, UserEventReader
from chat4all.domain.events import EventQuery, UserEvent, next_cursor, require_contiguous, resolve_since

DEFAULT_EVENT_RETENTION = timedelta(days=7)
PURGE_BATCH = 5_000


@attrs.frozen
class EventBatch:
    """A page of a user's events and the cursor to resume from (always this one, not the client's own)."""

    events: list[UserEvent]
    next: int


@attrs.define
class ReadEvents:
    """A user's events after `since`: at once when there are any, otherwise the first ones to come
    within `timeout` seconds, otherwise none (long-poll, Matrix `/sync` style)."""

    log: UserEventReader
    notifier: EventNotifier
    monotonic: Callable[[], float] = time.monotonic

    async def execute(self, caller: UUID, query: EventQuery) -> EventBatch:
        since = query.since if query.since is not None else (await self.log.bounds(caller)).last
        if query.timeout == 0:
            return await self._read(caller, since, query.limit)
        async with self.notifier.listen(caller) as wakeup:
            deadline = self.monotonic() + query.timeout
            while True:
                batch = await self._read(caller, since, query.limit)
                remaining = deadline - self.monotonic()
                if batch.events or remaining <= 0 or not await wakeup.wait(remaining):
                    return batch
                since = batch.next  # woken: read again (the wake-up may have been for events already read)

    async def page(self, caller: UUID, since: int | None, limit: int) -> EventBatch:
        """What is there now, without waiting: for streams, which wait on wake-ups of their own.
        Without `since` there is nothing to send yet: the cursor is the newest seq."""
        if since is None:
            return EventBatch([], (await self.log.bounds(caller)).last)
        return await self._read(caller, since, limit)

    async def _read(self, caller: UUID, since: int, limit: int) -> EventBatch:
        bounds, events = await self.log.read_after(caller, since, limit)
        after = resolve_since(since, bounds)
        if after != since:  # the cursor was ahead of the log: nothing after it, resume from the end
            events = []
        require_contiguous(after, events, bounds.last)
        return EventBatch(events, next_cursor(after, events))


@attrs.define
class PurgeEvents:
    """Drops the events older than the retention period, a batch at a time; returns how many."""

    log: UserEventReader
    clock: Clock
    retention: timedelta = DEFAULT_EVENT_RETENTION
    batch: int = PURGE_BATCH

    async def execute(self) -> int:
        before = self.clock.now() - self.retention
        total = 0
        while True:
            dropped = await self.log.purge_before(before, self.batch)
            total += dropped
            if dropped < self.batch:
                return total
