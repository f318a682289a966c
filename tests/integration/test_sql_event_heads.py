"""Where users' event logs end, on both engines: one statement for many users, what is committed
only, and on SQLite a reading engine in autocommit (the embedded profile's live connections')
that does not wait for, or hold up, the writer."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from chat4all.adapters.sql.engine import create_engine
from chat4all.adapters.sql.event_heads import SqlEventLogHeads
from chat4all.adapters.sql.event_log import SqlUserEventReader
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.domain.events import EventType, PendingEvent
from chat4all.domain.users import User

pytestmark = pytest.mark.services

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_where_each_users_log_ends_in_one_query_committed_events_only(engine, database_url):
    users = [User(uuid4(), f"user{index}", "h", START) for index in range(3)]
    factory = SqlUnitOfWorkFactory(engine)
    async with factory() as tx:
        for user in users:
            await tx.users.add(user)
        await tx.events.append([PendingEvent(users[0].id, EventType.MESSAGE_CREATED, START, {"n": n}) for n in range(3)])
        await tx.events.append([PendingEvent(users[1].id, EventType.MESSAGE_CREATED, START, {})])
        await tx.commit()
    reads = create_engine(database_url)
    heads = SqlEventLogHeads(reads.execution_options(isolation_level="AUTOCOMMIT"))
    try:
        async with factory() as open_tx:  # holds the writer (SQLite's write lock) while the heads are read
            await open_tx.events.append([PendingEvent(users[2].id, EventType.MESSAGE_CREATED, START, {})])
            assert await heads.last_seqs([user.id for user in users]) == {users[0].id: 3, users[1].id: 1}
            reader = SqlUserEventReader(reads.execution_options(isolation_level="AUTOCOMMIT"))
            assert (await reader.bounds(users[0].id)).last == 3
        assert await heads.last_seqs([users[2].id]) == {}  # rolled back
        assert await heads.last_seqs([]) == {}
    finally:
        await reads.dispose()
