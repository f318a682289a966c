"""The live connections' reads of users' logs, through SQLAlchemy (both engines) and on the direct
psycopg pool (PostgreSQL): the same bounds and pages for every cursor, each event as it was stored."""

from __future__ import annotations

from datetime import UTC, timedelta
from uuid import uuid4

import pytest

from chat4all.adapters.sql.event_log import SqlUserEventReader
from chat4all.adapters.sql.postgres.event_reads import PostgresUserEventReader
from chat4all.domain.events import EventType, LogBounds
from tests.integration.sql_fixtures import (  # noqa: F401 - fixtures
    database_url,
    direct_pool_of_test,
    engine,
    implementation,
    postgres_url,
    sqlite_template,
)
from tests.integration.test_sql_event_log import START, add_users, append, pending

pytestmark = pytest.mark.services


@pytest.fixture
def backend(implementation):  # noqa: F811
    return implementation[0]


@pytest.fixture
def reader(engine, direct_pool_of_test):  # noqa: F811
    sql = SqlUserEventReader(engine)
    return sql if direct_pool_of_test is None else PostgresUserEventReader(direct_pool_of_test, sql)


async def test_every_cursor_gets_its_own_bounds_and_page_from_one_read(engine, reader) -> None:  # noqa: F811
    alice, bob, carol = await add_users(engine, 3)
    later = START + timedelta(seconds=1, microseconds=5)
    await append(engine, [pending(alice, n) for n in range(5)] + [pending(bob, 10, at=later, text="olá", nested={"a": [1]})])
    nobody = uuid4()
    pages = await reader.read_after_many([(alice, 0), (alice, 3), (bob, 0), (carol, 0), (nobody, 0), (alice, 0)], 2)
    assert {cursor: (bounds, [event.data["n"] for event in events]) for cursor, (bounds, events) in pages.items()} == {
        (alice, 0): (LogBounds(1, 5), [0, 1]),
        (alice, 3): (LogBounds(1, 5), [3, 4]),
        (bob, 0): (LogBounds(1, 1), [10]),
        (carol, 0): (LogBounds(None, 0), []),
        (nobody, 0): (LogBounds(None, 0), []),
    }
    [event] = pages[(bob, 0)][1]
    assert (event.seq, event.type, event.at.astimezone(UTC), dict(event.data)) == (
        1, EventType.MESSAGE_CREATED, later, {"n": 10, "text": "olá", "nested": {"a": [1]}}
    )
    assert [event.seq for event in pages[(alice, 3)][1]] == [4, 5]
    assert (await reader.read_after(alice, 4, 10))[1][0].seq == 5
    assert await reader.read_after_many([], 10) == {}
