"""Where users' event logs end (`EventLogHeads`, both engines): their counters, read in one
statement, outside any transaction (on PostgreSQL in autocommit; on SQLite give it an engine in
autocommit, as the embedded profile's live connections have)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.base import one_of
from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import translate_errors
from chat4all.adapters.sql.tables import user_event_counters


class SqlEventLogHeads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def last_seqs(self, user_ids: Sequence[UUID]) -> dict[UUID, int]:
        if not user_ids:
            return {}
        users = one_of(user_event_counters.c.user_id, list(set(user_ids)), self._engine.dialect.name)
        heads = select(user_event_counters.c.user_id, user_event_counters.c.last_seq).where(users)
        async with exclusive_use(self._engine):
            with translate_errors():
                async with self._engine.connect() as connection:
                    if connection.dialect.name == "postgresql":
                        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                    return {row.user_id: row.last_seq for row in await connection.execute(heads)}
