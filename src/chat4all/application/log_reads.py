"""Reads of users' logs shared by the readers of one process.

A commit wakes the live connections of every user it concerns (both members of a private
conversation, all their sessions), and each woken connection reads its log from its cursor.
Read one by one, that is a round trip and a statement per connection per message: at 200
messages per second for 1,000 connections, most of an API process. `SharedLogReads` gathers
the reads asked for in the same turn of the event loop (the feeds woken by one notification
get there together) into one `read_after_many`, and hands each reader its own cursor's page;
readers of the same user at the same cursor share one page. While `in_flight` batches are
being read, new reads wait and go together in the next one, so the busier the process, the
fewer statements per read.

Each reader still gets exactly what `read_after` would have given it (the bounds and page of
its own cursor, from one statement), so ordering and the no-miss, no-duplicate rules of
`ReadEvents` hold unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

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
        self._in_flight_max = in_flight
        self._in_flight = 0
        self._waiting: dict[int, dict[Cursor, asyncio.Future[Page]]] = {}  # by page limit
        self._flush_planned = False

    async def bounds(self, user_id: UUID) -> LogBounds:
        return await self._reader.bounds(user_id)

    async def read_after(self, user_id: UUID, after: int, limit: int) -> Page:
        pending = self._waiting.setdefault(limit, {})
        page = pending.get((user_id, after))
        if page is None:
            page = pending[(user_id, after)] = asyncio.get_running_loop().create_future()
            page.add_done_callback(_consume)
            self._plan_flush()
        # Shielded: a reader that stops waiting (its connection closed) leaves the page to the others.
        return await asyncio.shield(page)

    async def read_after_many(self, cursors: Sequence[Cursor], limit: int) -> dict[Cursor, Page]:
        return await self._reader.read_after_many(cursors, limit)

    async def purge_before(self, before: datetime, limit: int) -> int:
        return await self._reader.purge_before(before, limit)

    def _plan_flush(self) -> None:
        if not self._flush_planned and self._in_flight < self._in_flight_max:
            self._flush_planned = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Starts reading what waits, up to the batches allowed at once."""
        self._flush_planned = False
        while self._waiting and self._in_flight < self._in_flight_max:
            limit, pending = next(iter(self._waiting.items()))
            taken = dict(list(pending.items())[:MAX_CURSORS_PER_READ])
            for cursor in taken:
                del pending[cursor]
            if not pending:
                del self._waiting[limit]
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._read(taken, limit), name="shared-log-read")

    async def _read(self, pages: dict[Cursor, asyncio.Future[Page]], limit: int) -> None:
        try:
            read = await self._reader.read_after_many(list(pages), limit)
        except Exception as error:  # every reader of the batch sees the failure, and retries as it would alone
            for page in pages.values():
                if not page.done():
                    page.set_exception(error)
        else:
            for cursor, page in pages.items():
                if not page.done():
                    page.set_result(read[cursor])
        finally:
            for page in pages.values():  # cancelled (the process is stopping): nobody waits forever
                page.cancel()
            self._in_flight -= 1
            if self._waiting:
                self._plan_flush()


def _consume(page: asyncio.Future[Page]) -> None:
    """Marks a failure as seen even when every reader of the page has stopped waiting for it."""
    if not page.cancelled():
        with contextlib.suppress(Exception):
            page.exception()
