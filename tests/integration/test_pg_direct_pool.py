"""The worker's and API's psycopg pool after the server dropped its connections: only the call
that meets a dead connection fails; the ones after it get live connections."""

from __future__ import annotations

import psycopg
import pytest

from chat4all.adapters.sql.postgres.connections import direct_pool
from tests.integration.sql_fixtures import create_scratch_database, drop_scratch_database, terminate_other_connections

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def scratch_url():  # type: ignore[no-untyped-def]
    url = create_scratch_database("chat4all_pool")
    yield url
    drop_scratch_database(url)


async def select_one(pool) -> int:  # type: ignore[no-untyped-def]
    async with pool.connection() as connection:
        return (await (await connection.execute("SELECT 1")).fetchone())[0]


async def test_after_a_failure_a_dead_idle_connection_is_never_handed_out(scratch_url: str) -> None:
    # The connection that joins the pool after the failure's check, as one still connecting
    # when the server dropped everything does.
    pool = direct_pool(scratch_url, min_connections=1, max_connections=1)
    await pool.open(wait=True)
    try:
        assert await select_one(pool) == 1
        terminate_other_connections(scratch_url)
        pool.suspect_connections()
        assert await select_one(pool) == 1
    finally:
        await pool.close()


async def test_a_healthy_pool_does_not_ping_before_use(scratch_url: str) -> None:
    pool = direct_pool(scratch_url, min_connections=1, max_connections=1)
    await pool.open(wait=True)
    try:
        assert await select_one(pool) == 1
        terminate_other_connections(scratch_url)
        with pytest.raises(psycopg.OperationalError):
            await select_one(pool)
    finally:
        await pool.close()
