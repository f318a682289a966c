"""The distributed profile's hottest statements, sent with psycopg directly.

Accepting a message and relaying the outbox run once per request and once per relay round; through
SQLAlchemy each statement costs a pool pre-ping, a BEGIN and the construct's compilation. These
run on a small psycopg pool of autocommit connections instead: a statement is one round trip,
and a transaction costs only its own BEGIN and COMMIT. Prepared server-side after a few uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import make_url

from chat4all.domain.errors import InvalidInput, Unavailable
from chat4all.domain.messages import Message

log = logging.getLogger(__name__)


def conninfo_of(database_url: str) -> str:
    """The libpq connection string of a `postgresql+psycopg://` SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def direct_pool(
    database_url: str, *, min_connections: int = 1, max_connections: int = 10, timeout: float = 5.0, connect_timeout: int = 5
) -> AsyncConnectionPool:
    """Opened by `await pool.open()`, closed by `await pool.close()`. No connection is checked before
    use: a broken one fails its statement, and is replaced when it goes back to the pool."""
    return AsyncConnectionPool(
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


# Parameters: psycopg dumps a Python list element by element in Python (~125-300 us per message
# here), so the direct statements take lists as one string each: JSON documents read with
# `json_to_recordset`, and `uuid[]` literals.


def uuid_array(ids: Iterable[UUID]) -> str:
    """A `uuid[]` literal, sent as one string."""
    return "{" + ",".join(map(str, ids)) + "}"


def history_json_rows(message: Message, first_position: int) -> list[dict[str, Any]]:
    """A message's new history entries as JSON rows for `message_events`; `position` (from
    `first_position`) keeps their order across the whole statement."""
    return [
        {
            "message_id": str(message.id),
            "status": event.status,
            "channel": event.channel,
            "at": event.at.isoformat(),
            "detail": event.detail,
            "position": first_position + offset,
        }
        for offset, event in enumerate(message.new_events)
    ]
