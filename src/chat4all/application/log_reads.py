"""Reads of users' logs shared by the readers of one process.

A commit wakes the live connections of every user it concerns (both members of a private
conversation, all their sessions), and each woken connection reads its log from its cursor.
Read one by one, that is a round trip and a statement per connection per message: at 200
messages per second for 1,000 connections, most of an API process. `SharedLogReads` gathers
the reads asked for in the same turn of the event loop (the feeds woken by one notification
get there together) into one `read_after_many`, and hands each reader its own cursor's page;
readers of the same user at the same cursor share one page. While `in_flight` batches are
being read, new reads wait and go together in the next one, so the busier the process, the
fewer statements per read (the batching is `batched_loads.BatchedLoads`, one per page limit).

Each reader still gets exactly what `read_after` would have given it (the bounds and page of
its own cursor, from one statement), so ordering and the no-miss, no-duplicate rules of
`ReadEvents` hold unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from chat4all.application.batched_loads import BatchedLoads
from chat4all.application.ports import UserEventReader
from chat4all.domain.events import LogBounds, UserEvent

Cursor = tuple[UUID, int]
Page = tuple[LogBounds, list[UserEvent]]

MAX_CURSORS_PER_READ = 500  # cursors in one statement: it stays small enough to plan and send quickly
IN_FLIGHT = 2  # batches read at once; the rest wait and join the next one


class SharedLogReads:
    """A `UserEventReader` whose `read_after` calls are batched per event-loop turn."""

    def __init__(self, reader: UserEventReader, *, in_flight: int = IN_FLIGHT) -> None:
        self._reader = reader
        self._in_flight = in_flight
        self._by_limit: dict[int, BatchedLoads[Cursor, Page]] = {}

    async def bounds(self, user_id: UUID) -> LogBounds:
        return await self._reader.bounds(user_id)

    async def read_after(self, user_id: UUID, after: int, limit: int) -> Page:
        pages = self._by_limit.get(limit)
        if pages is None:
            pages = self._by_limit[limit] = BatchedLoads(
                lambda cursors: self._reader.read_after_many(cursors, limit),
                in_flight=self._in_flight,
                max_keys=MAX_CURSORS_PER_READ,
            )
        page = await pages.load((user_id, after))
        if page is None:  # `read_after_many` answers every cursor it is given
            raise LookupError(f"no page read for the cursor {after} of {user_id}")
        return page

    async def read_after_many(self, cursors: Sequence[Cursor], limit: int) -> dict[Cursor, Page]:
        return await self._reader.read_after_many(cursors, limit)

    async def purge_before(self, before: datetime, limit: int) -> int:
        return await self._reader.purge_before(before, limit)
