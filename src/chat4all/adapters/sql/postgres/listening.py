"""One PostgreSQL LISTEN connection per API process, for every channel the process listens on
(users' event wake-ups, `listener.py`; ephemeral notices, `live_notices.py`).

The connection reconnects with a growing delay (0.5 s doubling to 10 s, back to 0.5 s once it
was up) and notices a silent network cut by a `SELECT 1` after every `health_check` seconds
without a notification. Each channel's handler gets the payloads sent on it; each `on_connected`
callback runs every time the connection is LISTENing again (notifications sent while it was down
are lost: a channel whose notifications matter makes its readers re-read there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

from chat4all.adapters.sql.postgres.connections import conninfo_of

log = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 10.0

Handler = Callable[[str], None]


class PostgresListener:
    """Register channels with `on`, then `start` before serving and `stop` on shutdown."""

    def __init__(self, database_url: str, *, health_check: float = 30.0, connect_timeout: int = 5) -> None:
        self._conninfo = conninfo_of(database_url)
        self._health_check = health_check
        self._connect_timeout = connect_timeout
        self._handlers: dict[str, Handler] = {}
        self._on_connected: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while the LISTEN connection is up

    def on(self, channel: str, handle: Handler, on_connected: Callable[[], None] | None = None) -> None:
        """Hands every payload sent on `channel` to `handle` (in the event loop; it must not block)."""
        if not channel.isidentifier():
            raise ValueError(f"not a channel name: {channel!r}")
        self._handlers[channel] = handle
        if on_connected is not None:
            self._on_connected.append(on_connected)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="postgres-listener")

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
            raise ConnectionError("not listening for notifications")

    async def _listen_forever(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        while True:
            try:
                await self._listen()
            except psycopg.Error as error:
                log.warning("notifications: connection lost (%s); reconnecting in %.1f s", error, delay)
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
            for channel in self._handlers:
                await connection.execute(f"LISTEN {channel}")
            self.listening.set()
            for connected in self._on_connected:
                connected()
            while True:
                async for notification in connection.notifies(timeout=self._health_check):
                    self._hand_over(notification.channel, notification.payload)
                await connection.execute("SELECT 1")  # a dead connection fails here rather than waiting forever

    def _hand_over(self, channel: str, payload: str) -> None:
        handle = self._handlers.get(channel)
        if handle is None:
            return
        try:
            handle(payload)
        except Exception:  # one bad payload must not drop the connection every channel depends on
            log.exception("notifications: the handler of %s failed", channel)
