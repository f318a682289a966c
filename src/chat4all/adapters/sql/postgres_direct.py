"""The distributed profile's hottest statements, sent with psycopg directly.

Accepting a message and relaying the outbox run once per request and once per relay round; through
SQLAlchemy each statement costs a pool pre-ping, a BEGIN and the construct's compilation. These
run on a small psycopg pool of autocommit connections instead: a statement is one round trip,
and a transaction costs only its own BEGIN and COMMIT. Prepared server-side after a few uses.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import make_url

from chat4all.domain.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)


def conninfo_of(database_url: str) -> str:
    """The libpq connection string of a `postgresql+psycopg://` SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def direct_pool(database_url: str, *, max_connections: int = 10, timeout: float = 5.0, connect_timeout: int = 5) -> AsyncConnectionPool:
    """Opened by `await pool.open()`, closed by `await pool.close()`. No connection is checked before
    use: a broken one fails its statement, and is replaced when it goes back to the pool."""
    return AsyncConnectionPool(
        conninfo_of(database_url),
        min_size=1,
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
