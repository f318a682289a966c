"""The per-user event log on SQL (both engines): appended inside the unit of work, read outside it.

Appending numbers each user's events from their row in `user_event_counters`, taken with one
`INSERT ... ON CONFLICT DO UPDATE SET last_seq = last_seq + n ... RETURNING last_seq` over the
users in `lock_order` (an upsert: a user's first event creates the row). The rows stay locked
until the transaction ends, so a user's events are numbered in commit order with no gap (see
`chat4all.application.events`). On PostgreSQL the same transaction also sends
`pg_notify(EVENTS_CHANNEL, '<user id>,<user id>,...')`: PostgreSQL delivers it when the
transaction commits, and never if it rolls back, to every API process LISTENing
(`postgres/listener.py`). On SQLite every reader is in this process and is woken by the use
case through the in-process notifier.

Reading holds a connection only while it reads (a long poll holds none while it waits), in
autocommit mode on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, TextClause, delete, func, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat4all.adapters.sql.base import SqlRepository
from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import translate_errors
from chat4all.adapters.sql.tables import user_event_counters, user_events
from chat4all.domain.events import EventType, LogBounds, PendingEvent, UserEvent, lock_order, number_events

EVENTS_CHANNEL = "chat4all_events"
# A notification's payload must stay under 8000 bytes: 200 ids of 36 characters and a comma.
IDS_PER_NOTIFICATION = 200


def wake_up_payloads(user_ids: Iterable[UUID]) -> list[str]:
    """The payloads of the notifications that wake `user_ids`' readers: comma-separated ids."""
    ordered = [str(user_id) for user_id in sorted(set(user_ids))]
    return [",".join(ordered[start : start + IDS_PER_NOTIFICATION]) for start in range(0, len(ordered), IDS_PER_NOTIFICATION)]


def parse_wake_up(payload: str) -> list[UUID]:
    """The user ids of a notification's payload; what is not an id is skipped."""
    found = []
    for part in payload.split(","):
        with contextlib.suppress(ValueError):
            found.append(UUID(part))
    return found


# The counters' upsert, built once per dialect: building it costs more than running it (its
# `excluded` alias copies the table's columns, and a new statement needs a new cache key), which
# was a sixth of the API process's time with 1,000 clients sending.
_TAKE_SEQS: dict[str, Any] = {}


class SqlUserEventLog(SqlRepository):
    def _take_seqs(self) -> Any:
        taken = _TAKE_SEQS.get(self._dialect)
        if taken is None:
            upsert = self._upsert(user_event_counters)
            taken = _TAKE_SEQS[self._dialect] = upsert.on_conflict_do_update(
                index_elements=[user_event_counters.c.user_id],
                set_={"last_seq": user_event_counters.c.last_seq + upsert.excluded.last_seq},
            ).returning(user_event_counters.c.user_id, user_event_counters.c.last_seq)
        return taken

    async def append(self, events: Sequence[PendingEvent]) -> list[tuple[UUID, UserEvent]]:
        if not events:
            return []
        users = lock_order(event.user_id for event in events)
        counts = Counter(event.user_id for event in events)
        taken = self._take_seqs()
        # Sent as one multi-row statement with the rows in the order given (SQLAlchemy's
        # "insertmanyvalues"), so the counters are locked in `lock_order`.
        rows = [{"user_id": user_id, "last_seq": counts[user_id]} for user_id in users]
        last_seqs = {row.user_id: row.last_seq - counts[row.user_id] for row in await self._execute(taken, rows)}
        numbered, _ = number_events(last_seqs, events)
        rows = [
            {"user_id": user_id, "seq": event.seq, "type": event.type.value, "at": event.at, "data": dict(event.data)}
            for user_id, event in numbered
        ]
        await self._execute(insert(user_events), rows)
        if self._dialect == "postgresql":
            for payload in wake_up_payloads(users):
                await self._execute(select(func.pg_notify(EVENTS_CHANNEL, payload)))
        return numbered


def _cursors_cte(dialect: str) -> str:
    if dialect == "postgresql":
        return "SELECT c.user_id, c.cursor_seq FROM unnest(CAST(:users AS uuid[]), CAST(:cursor_seqs AS bigint[])) AS c(user_id, cursor_seq)"
    return "SELECT json_extract(value, '$[0]') AS user_id, json_extract(value, '$[1]') AS cursor_seq FROM json_each(:cursors)"


def pages_sql(dialect: str) -> str:
    """Each cursor's bounds and page, in one statement (one snapshot, so no page runs past its
    bounds). A page is `seq` in (cursor, cursor + limit]: seqs have no gaps, and a range on the
    primary key costs a few index pages however long the log. Parameters as `:name`."""
    return f"""
        WITH cursors AS ({_cursors_cte(dialect)}),
        heads AS (
            SELECT c.user_id, c.cursor_seq, k.last_seq,
                   (SELECT min(o.seq) FROM user_events o WHERE o.user_id = c.user_id) AS oldest_seq
            FROM cursors c LEFT JOIN user_event_counters k ON k.user_id = c.user_id
        )
        SELECT h.user_id, h.cursor_seq, h.last_seq, h.oldest_seq, e.seq, e.type, e.at, e.data
        FROM heads h LEFT JOIN user_events e
          ON e.user_id = h.user_id AND e.seq > h.cursor_seq AND e.seq <= h.cursor_seq + :page_limit
        ORDER BY h.user_id, h.cursor_seq, e.seq"""


def _pages_statement(dialect: str) -> TextClause:
    columns = user_events.c
    return text(pages_sql(dialect)).columns(
        user_id=columns.user_id.type,
        cursor_seq=BigInteger(),
        last_seq=BigInteger(),
        oldest_seq=BigInteger(),
        seq=columns.seq.type,
        type=columns.type.type,
        at=columns.at.type,
        data=columns.data.type,
    )


_PAGES = {dialect: _pages_statement(dialect) for dialect in ("postgresql", "sqlite")}


def event_of(row: object) -> UserEvent:
    return UserEvent(row.seq, EventType(row.type), row.at, row.data)  # type: ignore[attr-defined]


def pages_of(rows: Iterable[Any], wanted: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], tuple[LogBounds, list[UserEvent]]]:
    """Each wanted cursor's bounds and page, from the rows of `pages_sql`."""
    bounds: dict[tuple[UUID, int], LogBounds] = {}
    pages: dict[tuple[UUID, int], list[UserEvent]] = defaultdict(list)
    for row in rows:
        key = (row.user_id, row.cursor_seq)
        bounds[key] = LogBounds(row.oldest_seq, row.last_seq or 0)
        if row.seq is not None:
            pages[key].append(event_of(row))
    return {key: (bounds[key], pages[key]) for key in wanted}


class SqlUserEventReader:
    """`UserEventReader` on the engine's pool, each call on a connection of its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """PostgreSQL: autocommit, no BEGIN or ROLLBACK. SQLite: a transaction as any other (the
        driver's autocommit mode would not be restored when the connection goes back to the pool)."""
        async with exclusive_use(self._engine):
            with translate_errors():
                async with self._engine.connect() as connection:
                    if connection.dialect.name == "postgresql":
                        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                    yield connection

    async def bounds(self, user_id: UUID) -> LogBounds:
        async with self._reading() as connection:
            return await self._bounds(connection, user_id)

    async def read_after(self, user_id: UUID, after: int, limit: int) -> tuple[LogBounds, list[UserEvent]]:
        return (await self.read_after_many([(user_id, after)], limit))[(user_id, after)]

    async def read_after_many(
        self, cursors: Sequence[tuple[UUID, int]], limit: int
    ) -> dict[tuple[UUID, int], tuple[LogBounds, list[UserEvent]]]:
        """One statement for every cursor, built once per dialect: no statement to build and no
        cache key to compute per call (that was a seventh of a busy API process)."""
        wanted = sorted(set(cursors))
        if not wanted:
            return {}
        async with self._reading() as connection:
            dialect = connection.dialect.name
            params: dict[str, object] = {"page_limit": limit}
            if dialect == "postgresql":
                params |= {"users": [user_id for user_id, _ in wanted], "cursor_seqs": [after for _, after in wanted]}
            else:
                params["cursors"] = json.dumps([[user_id.hex, after] for user_id, after in wanted])
            rows = (await connection.execute(_PAGES[dialect], params)).all()
        return pages_of(rows, wanted)

    @staticmethod
    async def _bounds(connection: AsyncConnection, user_id: UUID) -> LogBounds:
        last = select(user_event_counters.c.last_seq).where(user_event_counters.c.user_id == user_id).scalar_subquery()
        oldest = select(func.min(user_events.c.seq)).where(user_events.c.user_id == user_id).scalar_subquery()
        row = (await connection.execute(select(last.label("last"), oldest.label("oldest")))).one()
        return LogBounds(row.oldest, row.last or 0)

    async def purge_before(self, before: datetime, limit: int) -> int:
        """One statement: per user, the prefix up to their newest event older than `before`, the
        first `limit` of those rows in (user, seq) order, so what is cut is a prefix of each log."""
        old = (
            select(user_events.c.user_id, func.max(user_events.c.seq).label("up_to"))
            .where(user_events.c.at < before)
            .group_by(user_events.c.user_id)
            .subquery()
        )
        doomed = (
            select(user_events.c.user_id, user_events.c.seq)
            .join(old, (old.c.user_id == user_events.c.user_id) & (user_events.c.seq <= old.c.up_to))
            .order_by(user_events.c.user_id, user_events.c.seq)
            .limit(limit)
        )
        async with exclusive_use(self._engine):
            with translate_errors():
                async with self._engine.begin() as connection:
                    result = await connection.execute(
                        delete(user_events).where(tuple_(user_events.c.user_id, user_events.c.seq).in_(doomed))
                    )
        return result.rowcount
