"""The live connections' reads of users' logs on the direct psycopg pool (an API process of the
distributed profile): the statement of `SqlUserEventReader.read_after_many`, sent as it is, in
autocommit. Through SQLAlchemy each read also paid a connection checkout with its reset, the
statement's cache key and its result processing: the reads were a tenth of the API process's
samples with 1,000 clients at 200 messages per second. Everything else is `SqlUserEventReader`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool

from chat4all.adapters.sql.event_log import SqlUserEventReader, pages_of, pages_sql
from chat4all.adapters.sql.postgres.connections import translate_psycopg_errors
from chat4all.domain.events import LogBounds, UserEvent

PAGES = pages_sql("postgresql").replace(":users", "%(users)s").replace(":cursor_seqs", "%(cursor_seqs)s").replace(
    ":page_limit", "%(page_limit)s"
)


class PostgresUserEventReader:
    """`UserEventReader`: `read_after_many` (and `read_after`) on `pool`, the rest by `reader`."""

    def __init__(self, pool: AsyncConnectionPool, reader: SqlUserEventReader) -> None:
        self._pool = pool
        self._reader = reader

    async def bounds(self, user_id: UUID) -> LogBounds:
        return await self._reader.bounds(user_id)

    async def read_after(self, user_id: UUID, after: int, limit: int) -> tuple[LogBounds, list[UserEvent]]:
        return (await self.read_after_many([(user_id, after)], limit))[(user_id, after)]

    async def read_after_many(
        self, cursors: Sequence[tuple[UUID, int]], limit: int
    ) -> dict[tuple[UUID, int], tuple[LogBounds, list[UserEvent]]]:
        wanted = sorted(set(cursors))
        if not wanted:
            return {}
        parameters = {"users": [user for user, _ in wanted], "cursor_seqs": [seq for _, seq in wanted], "page_limit": limit}
        with translate_psycopg_errors():
            async with self._pool.connection() as connection:
                cursor = connection.cursor(row_factory=namedtuple_row)
                rows = await (await cursor.execute(PAGES, parameters)).fetchall()
        return pages_of(rows, wanted)

    async def purge_before(self, before: datetime, limit: int) -> int:
        return await self._reader.purge_before(before, limit)
