"""The migrations build exactly the schema in `tables.metadata`, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.engine import create_engine
from chat4all.adapters.sql.migrations import current_revision, downgrade_database, upgrade_database
from chat4all.adapters.sql.tables import metadata


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from chat4all.adapters.sql.migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


pytestmark = pytest.mark.services


async def schema_differences(engine: AsyncEngine, target: MetaData = metadata) -> list:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), target)
        )


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_migrated_schema_matches_the_tables(empty_database: str) -> None:
    await upgrade_database(empty_database)
    await upgrade_database(empty_database)  # at head already: nothing to do
    engine = create_engine(empty_database)
    try:
        assert await current_revision(engine) == head_revision()
        assert await schema_differences(engine) == []

        # The comparison does notice drift.
        drifted = MetaData()
        for table in metadata.sorted_tables:
            table.to_metadata(drifted)
        drifted.tables["users"].append_column(Column("nickname", Integer))
        assert [diff[0] for diff in await schema_differences(engine, drifted)] == ["add_column"]

        await downgrade_database(engine, "base")
        assert await table_names(engine) <= {"alembic_version"}
        assert await current_revision(engine) is None
        await upgrade_database(engine)
        assert await schema_differences(engine) == []
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_from_several_processes_take_turns(empty_database: str) -> None:
    # Separate processes, as deployments start them: Alembic keeps its migration context in
    # module-level state, so migrations interleaved within one process would share it.
    script = "import asyncio, sys; from chat4all.adapters.sql.migrations import upgrade_database; asyncio.run(upgrade_database(sys.argv[1]))"
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, empty_database, stderr=asyncio.subprocess.PIPE)
        for _ in range(3)
    ]
    outcomes = await asyncio.gather(*(process.communicate() for process in processes))
    assert [process.returncode for process in processes] == [0, 0, 0], [stderr.decode()[-2000:] for _, stderr in outcomes]
    engine = create_engine(empty_database)
    try:
        assert await current_revision(engine) == head_revision()
        assert await schema_differences(engine) == []
    finally:
        await engine.dispose()


async def test_in_memory_sqlite_migrates_through_its_engine() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        await upgrade_database(engine)
        assert await schema_differences(engine) == []
    finally:
        await engine.dispose()


async def test_the_quota_migration_keeps_every_row_both_ways(empty_database: str) -> None:
    """0005 adds `conversations.created_by` to a table full of rows (NULL for them), and drops it
    again on the way down without rebuilding the table, which would cascade to the messages."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from sqlalchemy import func, insert, select

    from chat4all.adapters.sql.tables import conversation_members, conversations, messages, users

    await upgrade_database(empty_database, "0003")
    engine = create_engine(empty_database)
    user, conversation, now = uuid4(), uuid4(), datetime(2026, 1, 1, tzinfo=UTC)
    try:
        async with engine.begin() as connection:  # only columns that exist at 0003
            await connection.execute(insert(users).values(id=user, username="alice", password_hash="h", created_at=now))
            await connection.execute(
                insert(conversations).values(id=conversation, type="group", created_at=now, last_activity_at=now)
            )
            await connection.execute(insert(conversation_members).values(conversation_id=conversation, user_id=user, position=0))
            await connection.execute(
                insert(messages).values(
                    id=uuid4(), conversation_id=conversation, sender_id=user, channels=[], payload={}, priority="normal",
                    status="accepted", fingerprint="f", created_at=now, seq=1,
                )
            )
        await upgrade_database(engine)
        async with engine.connect() as connection:
            assert (await connection.execute(select(conversations.c.id, conversations.c.created_by))).all() == [(conversation, None)]
        await downgrade_database(engine, "0003")
        async with engine.connect() as connection:
            for table in (conversations, conversation_members, messages):
                assert (await connection.execute(select(func.count()).select_from(table))).scalar_one() == 1
        await upgrade_database(engine)
        assert await schema_differences(engine) == []
    finally:
        await engine.dispose()
