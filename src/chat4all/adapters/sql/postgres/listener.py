"""Waking event readers across API processes: PostgreSQL LISTEN/NOTIFY, as a wake-up carrying ids.

Every transaction that appends to users' event logs on PostgreSQL also calls
`pg_notify('chat4all_events', '<user id>,<user id>,...')` (`adapters.sql.event_log`, and the
one-statement intake): PostgreSQL delivers the notification when, and only if, it commits, to
every connection LISTENing on the channel, whichever process wrote. Each API process keeps one
such connection (`PostgresEventNotifier`) and hands what it hears to its in-process notifier,
which wakes the readers waiting there. The notification is only a hint: readers then read the
log, which is the truth.

When the connection drops (a server restart, a network cut) notifications are lost until it is
back: once it is LISTENing again, every local reader is woken and re-reads its log, so nothing
committed meanwhile is missed (it only comes later than it could have). A silent network cut is
noticed by a `SELECT 1` after every `health_check` seconds without a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from uuid import UUID

import psycopg

from chat4all.adapters.notifier import InProcessEventNotifier, LatchedWakeUp
from chat4all.adapters.sql.event_log import EVENTS_CHANNEL, parse_wake_up
from chat4all.adapters.sql.postgres.connections import conninfo_of

log = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 10.0


class PostgresEventNotifier:
    """`EventNotifier` of a distributed API process: readers wait in this process; the commits of
    any process wake them through PostgreSQL. `start` before serving, `stop` on shutdown."""

    def __init__(self, database_url: str, *, health_check: float = 30.0, connect_timeout: int = 5) -> None:
        self._conninfo = conninfo_of(database_url)
        self._health_check = health_check
        self._connect_timeout = connect_timeout
        self._local = InProcessEventNotifier()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while the LISTEN connection is up

    def listen(self, user_id: UUID) -> AbstractAsyncContextManager[LatchedWakeUp]:
        return self._local.listen(user_id)

    def notify(self, user_ids: Iterable[UUID]) -> None:
        """Nothing to do: the transaction that appended the events notified every process on commit."""

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="event-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.listening.clear()

    async def check(self) -> None:
        """Readiness: raises while the LISTEN connection is down (readers then wake only on their timeouts)."""
        if not self.listening.is_set():
            raise ConnectionError("not listening for event notifications")

    async def _listen_forever(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        while True:
            try:
                await self._listen()
            except psycopg.Error as error:
                log.warning("event notifications: connection lost (%s); reconnecting in %.1f s", error, delay)
            if self.listening.is_set():
                delay = RECONNECT_FIRST_DELAY  # it had been up: the next drop starts over
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def _listen(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout, application_name="chat4all-events"
        )
        async with connection:
            await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
            self.listening.set()
            self._local.notify_all()  # what was committed while nobody listened: every reader re-reads
            while True:
                async for notification in connection.notifies(timeout=self._health_check):
                    self._local.notify(parse_wake_up(notification.payload))
                await connection.execute("SELECT 1")  # a dead connection fails here rather than waiting forever
