"""Waking event readers across API processes: PostgreSQL LISTEN/NOTIFY, as a wake-up carrying ids.

Every transaction that appends to users' event logs on PostgreSQL also calls
`pg_notify('chat4all_events', '<user id>,<user id>,...')` (`adapters.sql.event_log`, and the
one-statement intake): PostgreSQL delivers the notification when, and only if, it commits, to
every connection LISTENing on the channel, whichever process wrote. Each API process keeps one
such connection (`listening.PostgresListener`, shared with the ephemeral notices) and this
notifier hands what it hears on the channel to its in-process notifier, which wakes the readers
waiting there. The notification is only a hint: readers then read the log, which is the truth.

When the connection drops (a server restart, a network cut) notifications are lost until it is
back: once it is LISTENing again, every local reader is woken and re-reads its log, so nothing
committed meanwhile is missed (it only comes later than it could have).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from uuid import UUID

from chat4all.adapters.notifier import InProcessEventNotifier, LatchedWakeUp
from chat4all.adapters.sql.event_log import EVENTS_CHANNEL, parse_wake_up
from chat4all.adapters.sql.postgres.listening import PostgresListener


class PostgresEventNotifier:
    """`EventNotifier` of a distributed API process: readers wait in this process; the commits of
    any process wake them through PostgreSQL, heard on `listener` (started by its owner)."""

    def __init__(self, listener: PostgresListener) -> None:
        self._local = InProcessEventNotifier()
        self.listening = listener.listening
        listener.on(EVENTS_CHANNEL, self._hear, on_connected=self._local.notify_all)

    def listen(self, user_id: UUID) -> AbstractAsyncContextManager[LatchedWakeUp]:
        return self._local.listen(user_id)

    def notify(self, user_ids: Iterable[UUID]) -> None:
        """Nothing to do: the transaction that appended the events notified every process on commit."""

    def _hear(self, payload: str) -> None:
        self._local.notify(parse_wake_up(payload))


def watch_appends(listener: PostgresListener, heard: Callable[[], None]) -> None:
    """Calls `heard` whenever a transaction of any process that appended to users' logs commits,
    and each time `listener` is LISTENing again (what committed while it was down went unheard):
    for a process that follows every log (a worker's webhook feeder), not one user's."""
    listener.on(EVENTS_CHANNEL, lambda _payload: heard(), on_connected=heard)
