"""The pool of autocommit psycopg connections the direct statements run on, their transactions
and how their errors reach the application (see `chat4all.adapters.sql.postgres`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import make_url

from chat4all.domain.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)


def conninfo_of(database_url: str) -> str:
    """The libpq connection string of a `postgresql+psycopg://` SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


# How long after a connection failure every connection is pinged before use.
SUSPECT_SECONDS = 10.0


class DirectPool(AsyncConnectionPool):
    """A pool that pings each connection before handing it out, but only for `SUSPECT_SECONDS`
    after a statement failed on a dead one. Checking the idle connections at that moment (see
    `checking_pool_on_failure`) misses one that was still connecting when the server dropped it
    and joins the pool just after; the pings catch it, and a healthy pool pays no round trip."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._ping_until = 0.0
        super().__init__(*args, check=self._ping_while_suspect, **kwargs)  # type: ignore[arg-type]

    def suspect_connections(self) -> None:
        self._ping_until = time.monotonic() + SUSPECT_SECONDS

    async def _ping_while_suspect(self, connection: AsyncConnection) -> None:
        if time.monotonic() < self._ping_until:
            await self.check_connection(connection)


def direct_pool(
    database_url: str, *, min_connections: int = 1, max_connections: int = 10, timeout: float = 5.0, connect_timeout: int = 5
) -> DirectPool:
    """Opened by `await pool.open()`, closed by `await pool.close()`. A connection is checked
    before use only after a failure (see `DirectPool`): a broken one fails its statement, and is
    replaced when it goes back to the pool."""
    return DirectPool(
        conninfo_of(database_url),
        min_size=min(min_connections, max_connections),
        max_size=max_connections,
        timeout=timeout,
        kwargs={"autocommit": True, "connect_timeout": connect_timeout, "application_name": "chat4all-direct"},
        open=False,
        name="chat4all-direct",
    )


@contextlib.contextmanager
def translate_psycopg_errors() -> Iterator[None]:
    """The direct statements' twin of `errors.translate_errors`: an unreachable or overloaded
    database is `Unavailable`, a value it cannot hold is `InvalidInput`."""
    try:
        yield
    except PoolTimeout as error:
        log.warning("database unavailable: no pooled connection in time")
        raise Unavailable("database unavailable") from error
    except psycopg.DataError as error:
        log.warning("database refused a value: %s", type(error).__name__)
        raise InvalidInput("a value in the request cannot be stored", code="unstorable_value") from error
    except (psycopg.OperationalError, psycopg.InterfaceError) as error:
        log.warning("database unavailable: %s: %s", type(error).__name__, error)
        raise Unavailable("database unavailable") from error


# How long a failed call waits for the pool to check its idle connections before it fails.
POOL_CHECK_SECONDS = 5.0


@contextlib.asynccontextmanager
async def checking_pool_on_failure(pool: AsyncConnectionPool) -> AsyncIterator[None]:
    """Wraps `pool.connection()`: when a statement fails on a dead connection, the pool's idle
    connections are likely dead too (a server restart drops them all), so they are checked before
    the error goes on, and the next calls get live ones instead of failing once per dead connection.
    (The pool itself only discards the broken connection it is given back.)"""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError):
        if isinstance(pool, DirectPool):
            pool.suspect_connections()
        # Shielded: a check cut short would lose the connections it had taken out of the pool.
        check = asyncio.ensure_future(pool.check())
        try:
            await asyncio.wait_for(asyncio.shield(check), POOL_CHECK_SECONDS)
        except Exception as error:  # noqa: BLE001 - the statement's own error is the one to report
            log.warning("checking the pooled connections failed: %s: %s", type(error).__name__, error)
        raise


@contextlib.asynccontextmanager
async def pipelined_transaction(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnection]:
    """A transaction whose BEGIN leaves with its first statements and whose COMMIT leaves with its
    last ones, in pipeline mode: a read, some Python, then a write cost two round trips in all.

    Statements are queued until a result is fetched (which sends them) or the block ends (which
    sends the rest with COMMIT and waits for the outcome); an error in the block, or in any of
    the statements, rolls the transaction back. (psycopg's own `transaction()` waits for BEGIN
    and syncs before COMMIT in pipeline mode: four round trips.)
    """
    async with checking_pool_on_failure(pool), pool.connection() as connection:
        try:
            async with connection.pipeline():
                await connection.execute("BEGIN")
                yield connection
                await connection.execute("COMMIT")
        except BaseException:
            await _roll_back_quietly(connection)
            raise


async def _roll_back_quietly(connection: AsyncConnection) -> None:
    """Ends a failed transaction before the connection goes back to the pool; a connection that
    broke meanwhile is left to the pool, which discards it."""
    if connection.closed or connection.info.transaction_status not in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        return
    try:
        await connection.execute("ROLLBACK")
    except psycopg.Error as error:
        log.warning("rolling back a failed transaction failed: %s: %s", type(error).__name__, error)
