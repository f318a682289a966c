"""The SQL unit of work and engine: a change left without commit rolls back, a database that cannot be
opened or reached is unavailable, and in-memory SQLite takes units of work one at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.engine import check, create_engine
from chat4all.adapters.sql.outbox import SqlOutboxReader
from chat4all.adapters.sql.tables import outbox
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory
from chat4all.domain.errors import Unavailable
from chat4all.domain.users import User
from tests.integration.sql_records import RecordingPublisher, at, count_rows

pytestmark = pytest.mark.services


async def test_leaving_without_commit_rolls_back(uow: SqlUnitOfWorkFactory) -> None:
    async with uow() as tx:
        await tx.users.add(User(uuid4(), "ghost", "hash", at(0)))
        await tx.outbox.add("topic", "key", {"n": 1})
    with pytest.raises(RuntimeError, match="boom"):
        async with uow() as tx:
            await tx.users.add(User(uuid4(), "ghost2", "hash", at(0)))
            raise RuntimeError("boom")
    async with uow() as tx:
        assert await tx.users.list(username=None, limit=10, offset=0) == []
    assert await count_rows(uow.engine, outbox) == 0


async def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    db = create_engine(f"sqlite+aiosqlite:///{tmp_path}")  # a directory, not a database file
    try:
        with pytest.raises(Unavailable):
            async with SqlUnitOfWork(db):
                pass
    finally:
        await db.dispose()


async def test_unreachable_database_is_unavailable() -> None:
    db = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_timeout=2)
    try:
        with pytest.raises(Unavailable, match="^database unavailable$"):
            await check(db)
        with pytest.raises(Unavailable):
            async with SqlUnitOfWork(db):
                pass
        with pytest.raises(Unavailable):
            await SqlOutboxReader(db).relay_batch(RecordingPublisher(), 10)
    finally:
        await db.dispose()


async def test_check_answers_on_a_live_database(engine: AsyncEngine) -> None:
    await check(engine)


async def test_in_memory_sqlite_serializes_units_of_work() -> None:
    from chat4all.adapters.sql.migrations import upgrade_database

    db = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        await upgrade_database(db)
        factory = SqlUnitOfWorkFactory(db)

        async def add(name: str) -> None:
            async with factory() as tx:
                await tx.users.add(User(uuid4(), name, "hash", at(0)))
                await asyncio.sleep(0.01)
                if name.endswith("odd"):
                    return  # rolled back
                await tx.commit()

        await asyncio.gather(*(add(f"user{n}{'odd' if n % 2 else ''}") for n in range(10)))
        async with factory() as tx:
            names = [user.username for user in await tx.users.list(username=None, limit=100, offset=0)]
        assert names == sorted(f"user{n}" for n in range(0, 10, 2))
    finally:
        await db.dispose()
