"""Waking the readers of users' event logs within one process (production code, not a test double).

The embedded profile runs every writer and every reader in one process: `InProcessEventNotifier`
is its `EventNotifier` alone, `notify` being called by the use cases after they commit. In the
distributed profile it is the local half of `adapters.sql.postgres.listener.PostgresEventNotifier`,
which feeds it what PostgreSQL's LISTEN connection hears.

Each waiting reader holds a latched flag: a notification that arrives between `listen` and
`wait` (while the reader reads the log) is kept and ends the next wait at once. Notifying costs
a dictionary lookup per user; a user nobody waits for costs nothing more. Watchers (the webhook
feeder) hear of every notification, whoever it is about.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from uuid import UUID


class LatchedWakeUp:
    """One reader's wake-up (`WakeUp`): set by a notification, cleared by the wait it ends."""

    def __init__(self) -> None:
        self._flag = asyncio.Event()

    def set(self) -> None:
        self._flag.set()

    async def wait(self, timeout: float) -> bool:
        if not self._flag.is_set():  # (a zero timeout would expire even with the flag set)
            try:
                # A timeout scope, not wait_for: on Python 3.11 wait_for wraps the wait in a task,
                # and every live connection waits here once per message it is told of.
                async with asyncio.timeout(timeout):
                    await self._flag.wait()
            except TimeoutError:
                return False
        self._flag.clear()
        return True


class InProcessEventNotifier:
    """`EventNotifier` within one process: a latched wake-up per listening reader."""

    def __init__(self) -> None:
        self._listeners: dict[UUID, set[LatchedWakeUp]] = defaultdict(set)
        self._watchers: list[Callable[[], None]] = []

    def watch(self, heard: Callable[[], None]) -> None:
        """Calls `heard` (which must not block) on every notification, about any user."""
        self._watchers.append(heard)

    @asynccontextmanager
    async def listen(self, user_id: UUID) -> AsyncIterator[LatchedWakeUp]:
        wakeup = LatchedWakeUp()
        self._listeners[user_id].add(wakeup)
        try:
            yield wakeup
        finally:
            self._listeners[user_id].discard(wakeup)
            if not self._listeners[user_id]:
                del self._listeners[user_id]

    def notify(self, user_ids: Iterable[UUID]) -> None:
        notified = set(user_ids)
        for user_id in notified:
            for wakeup in self._listeners.get(user_id, ()):
                wakeup.set()
        if notified:
            self._tell_watchers()

    def notify_all(self) -> None:
        """Wakes every reader (they re-read their logs): for when notifications may have been lost."""
        for wakeups in self._listeners.values():
            for wakeup in wakeups:
                wakeup.set()
        self._tell_watchers()

    def _tell_watchers(self) -> None:
        for heard in self._watchers:
            heard()

    def listening(self, user_id: UUID) -> int:
        """How many readers wait for `user_id`'s events."""
        return len(self._listeners.get(user_id, ()))
