"""What every SQL repository shares: one connection inside the unit of work's transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from chat4all.adapters.sql.errors import translate_errors


class SqlRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    @property
    def _dialect(self) -> str:
        return self._connection.dialect.name

    async def _execute(
        self, statement: Executable, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> CursorResult[Any]:
        with translate_errors():
            return await self._connection.execute(statement, parameters)

    async def _lock_until_commit(self, key: str) -> None:
        """Makes the transactions that lock the same `key` run the rest of their work one after
        another (a PostgreSQL advisory lock, held until the transaction ends). SQLite transactions
        start with BEGIN IMMEDIATE and are serialized already."""
        if self._dialect == "postgresql":
            lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
            await self._execute(text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": lock_id})

    def _upsert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can take ON CONFLICT clauses (both dialects spell them the same way)."""
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        if self._dialect == "sqlite":
            return sqlite.insert(table)
        raise NotImplementedError(f"no upsert for dialect {self._dialect!r}")

    def _insert_ignoring_duplicates(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        return self._upsert(table).on_conflict_do_nothing()


def one_of(column: Any, values: Sequence[Any], dialect: str) -> ColumnElement[bool]:
    """`column` among `values`: on PostgreSQL `= ANY(<one array parameter>)`, which the driver
    sends as it is, where an `IN` list of hundreds of parameters is rewritten placeholder by
    placeholder on every call (a fifth of an idle API process's work checking its live connections)."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(values))
