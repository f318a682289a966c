"""Ephemeral events to the live connections of one process (`LiveNotices`; production code).

The embedded profile uses it alone. In the distributed profile it is the local half of
`adapters.sql.postgres.live_notices.PostgresLiveNotices`, which hands it what other API
processes published.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

from chat4all.application.ports.live import Deliver
from chat4all.domain.events import EphemeralEvent


class InProcessLiveNotices:
    def __init__(self) -> None:
        self._subscribers: dict[UUID, list[Deliver]] = defaultdict(list)

    @contextmanager
    def subscribe(self, user_id: UUID, deliver: Deliver) -> Iterator[None]:
        self._subscribers[user_id].append(deliver)
        try:
            yield
        finally:
            self._subscribers[user_id].remove(deliver)
            if not self._subscribers[user_id]:
                del self._subscribers[user_id]

    async def publish(self, user_ids: Sequence[UUID], event: EphemeralEvent) -> None:
        self.deliver(user_ids, event)

    def deliver(self, user_ids: Iterable[UUID], event: EphemeralEvent) -> None:
        """Hands `event` to this process's subscribers of `user_ids`."""
        for user_id in set(user_ids):
            for deliver in list(self._subscribers.get(user_id, ())):
                deliver(event)

    def subscribers(self, user_id: UUID) -> int:
        return len(self._subscribers.get(user_id, ()))
