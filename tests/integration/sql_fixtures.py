"""Fixtures for the SQL adapter tests: a migrated database per backend, emptied for every test.

PostgreSQL comes from `CHAT4ALL_TEST_DATABASE_URL` (started by `scripts/services.sh up`); the
session creates its own `chat4all_it_<random>` database there, migrates it once and drops it at
the end. SQLite tests copy a database file migrated once per session. An unreachable PostgreSQL
fails the tests with instructions; it is never a reason to skip them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.connectors import SendLedger
from chat4all.adapters.sql.engine import create_engine
from chat4all.adapters.sql.ledger import SqlSendLedger
from chat4all.adapters.sql.migrations import upgrade_database
from chat4all.adapters.sql.postgres.batches import PostgresMessageBatches
from chat4all.adapters.sql.postgres.connections import direct_pool
from chat4all.adapters.sql.postgres.ledger import PostgresSendLedger
from chat4all.adapters.sql.tables import metadata
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.message_batches import UnitOfWorkMessageBatches
from chat4all.application.ports import MessageBatches

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:15432/chat4all_test"
BACKENDS = ["sqlite", "postgresql"]


def sql_test_url() -> str:
    return os.environ.get("CHAT4ALL_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin_connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(_libpq(url), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL at {make_url(url).render_as_string()} is not reachable ({error}).\n"
            'Start it with `bash scripts/services.sh up` and load `eval "$(bash scripts/services.sh env)"` '
            "(CHAT4ALL_TEST_DATABASE_URL).",
            pytrace=False,
        )


def create_scratch_database(prefix: str = "chat4all_it") -> str:
    """Creates an empty database next to the test database; returns its URL."""
    base = sql_test_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin_connect(base) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_scratch_database(url: str) -> None:
    name = make_url(url).database
    with _admin_connect(sql_test_url()) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test session."""
    url = create_scratch_database()
    try:
        asyncio.run(upgrade_database(url))
        yield url
    finally:
        drop_scratch_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    asyncio.run(upgrade_database(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database of its own with no schema at all, for the migrations to build."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    url = create_scratch_database("chat4all_mig")
    try:
        yield url
    finally:
        drop_scratch_database(url)


# Faster than TRUNCATE for the handful of rows a test leaves behind.
_DELETE_ALL = "; ".join(f"DELETE FROM {table.name}" for table in reversed(metadata.sorted_tables))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database of the backend under test."""
    if backend == "sqlite":
        path = tmp_path / "chat4all.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    with _admin_connect(url) as connection:
        connection.execute(_DELETE_ALL)
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def uow(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine)


# Behaviours with a SQLAlchemy implementation (both backends) and a psycopg one (PostgreSQL only):
# a test module runs them over all three by taking `backend` from `implementation`, e.g.
#     @pytest.fixture
#     def backend(implementation): return implementation[0]
IMPLEMENTATIONS = [("sqlite", "sqlalchemy"), ("postgresql", "sqlalchemy"), ("postgresql", "direct")]
SQLALCHEMY = IMPLEMENTATIONS[:2]
DIRECT = IMPLEMENTATIONS[2:]


@pytest.fixture(params=IMPLEMENTATIONS, ids=["-".join(case) for case in IMPLEMENTATIONS])
def implementation(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


@pytest.fixture
async def direct_pool_of_test(implementation: tuple[str, str], database_url: str) -> AsyncIterator[AsyncConnectionPool | None]:
    """The psycopg pool of the direct implementation under test (None for SQLAlchemy's)."""
    if implementation[1] != "direct":
        yield None
        return
    pool = direct_pool(database_url, max_connections=4)
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def batches(uow: SqlUnitOfWorkFactory, direct_pool_of_test: AsyncConnectionPool | None) -> AsyncIterator[MessageBatches]:
    yield UnitOfWorkMessageBatches(uow) if direct_pool_of_test is None else PostgresMessageBatches(direct_pool_of_test)


@pytest.fixture
def ledger(engine: AsyncEngine, direct_pool_of_test: AsyncConnectionPool | None) -> SendLedger:
    return SqlSendLedger(engine) if direct_pool_of_test is None else PostgresSendLedger(direct_pool_of_test)


def terminate_other_connections(url: str) -> None:
    """Drops every other connection to the test database, as a server restart would."""
    with _admin_connect(url) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (make_url(url).database,),
        )
