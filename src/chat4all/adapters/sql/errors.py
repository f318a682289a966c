"""Turning driver errors into the errors the application understands, without leaking SQL."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from chat4all.domain.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

UNIQUE_VIOLATION_SQLSTATE = "23505"
_SQLITE_UNIQUE_ERRORS = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


def is_unique_violation(error: sa_exc.IntegrityError) -> bool:
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate is not None:
        return sqlstate == UNIQUE_VIOLATION_SQLSTATE
    error_name = getattr(original, "sqlite_errorname", None)
    if error_name is not None:
        return error_name in _SQLITE_UNIQUE_ERRORS
    text = str(original)
    return "UNIQUE constraint failed" in text or "duplicate key value" in text


def _is_unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection became free in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error, sa_exc.OperationalError):
            # SQLite reports plain SQL mistakes ("no such table") as OperationalError too; those are bugs.
            return getattr(error.orig, "sqlite_errorname", None) != "SQLITE_ERROR"
        return isinstance(error, sa_exc.InterfaceError)
    return isinstance(error, (sa_exc.DisconnectionError, ConnectionError, TimeoutError))


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Raises `Unavailable` for an unreachable, overloaded or locked database, and `InvalidInput` for a
    value the database cannot hold (a NUL character in text on PostgreSQL, an integer beyond 64 bits):
    the use cases validate input first, this is the net under them, so bad input never becomes a 500."""
    try:
        yield
    except (Unavailable, InvalidInput):
        raise
    except (sa_exc.DataError, OverflowError) as error:
        log.warning("database refused a value: %s", type(getattr(error, "orig", None) or error).__name__)
        raise InvalidInput("a value in the request cannot be stored", code="unstorable_value") from error
    except Exception as error:
        if not _is_unavailable(error):
            raise
        log.warning("database unavailable: %s: %s", type(error).__name__, getattr(error, "orig", None) or error)
        raise Unavailable("database unavailable") from error


async def close_quietly(connection: AsyncConnection) -> None:
    """Closes (and so rolls back) a connection; a dead connection is only logged, so it cannot
    hide the error that is already on its way out."""
    try:
        await connection.close()
    except Exception as error:  # noqa: BLE001 - any failure here is secondary
        log.warning("closing a database connection failed: %s: %s", type(error).__name__, getattr(error, "orig", None) or error)
