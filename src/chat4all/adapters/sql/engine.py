"""Engines for the two supported databases, tuned for how Chat4All uses them.

SQLite (embedded profile): one pooled connection, WAL journal, foreign keys on, and explicit
`BEGIN IMMEDIATE` transactions, so the single embedded process serializes its transactions
instead of failing with "database is locked" and a read-then-write never needs a lock upgrade.

PostgreSQL (distributed profile): a regular connection pool with pre-ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url, pool, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat4all.adapters.sql.errors import translate_errors

SQLITE_BUSY_TIMEOUT_MS = 10_000


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _is_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or "mode=memory" in database or url.query.get("mode") == "memory"


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 20,
    max_overflow: int = 20,
    pool_timeout: float = 30.0,
    connect_timeout: int = 5,
    echo: bool = False,
    sqlite_foreign_keys: bool = True,
    pre_ping: bool = True,
) -> AsyncEngine:
    """An async engine for `sqlite+aiosqlite:///path` or `postgresql+psycopg://...`.

    `pool_size`/`max_overflow` apply to PostgreSQL only; SQLite always gets one connection.
    `pre_ping=False` skips PostgreSQL's liveness round trip on every checkout, for callers that
    retry a failed unit of work anyway: a connection found dead then invalidates the whole pool.
    """
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, pool_timeout=pool_timeout, echo=echo, foreign_keys=sqlite_foreign_keys)
    if url.get_backend_name() == "postgresql":
        return create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_pre_ping=pre_ping,
            connect_args={"connect_timeout": connect_timeout},
            echo=echo,
        )
    raise ValueError(f"unsupported database URL scheme {url.drivername!r} (use sqlite+aiosqlite or postgresql+psycopg)")


def _sqlite_engine(url: URL, *, pool_timeout: float, echo: bool, foreign_keys: bool) -> AsyncEngine:
    kwargs: dict[str, Any]
    if _is_memory(url):
        # The database lives inside its only connection; StaticPool keeps that connection.
        kwargs = {"poolclass": pool.StaticPool}
    else:
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs = {
            "poolclass": pool.AsyncAdaptedQueuePool,
            "pool_size": 1,
            "max_overflow": 0,
            "pool_timeout": pool_timeout,
        }
    engine = create_async_engine(url, echo=echo, **kwargs)
    memory = _is_memory(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        # Take the write lock up front: a transaction that reads and later writes cannot
        # then fail on a lock upgrade when another process wrote in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# A StaticPool hands its one connection to every caller at once; transactions on it must take turns.
_static_pool_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def exclusive_use(engine: AsyncEngine) -> AsyncIterator[None]:
    """Serializes transactions on engines whose pool shares a single connection (in-memory SQLite)."""
    if not isinstance(engine.pool, pool.StaticPool):
        yield
        return
    lock = _static_pool_locks.get(engine.sync_engine)
    if lock is None:
        lock = _static_pool_locks[engine.sync_engine] = asyncio.Lock()
    async with lock:
        yield


async def check(engine: AsyncEngine) -> None:
    """Readiness probe: raises `Unavailable` unless the database answers `SELECT 1`."""
    async with exclusive_use(engine):
        with translate_errors():
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))


check_database = check
