from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from chat4all.application.ports import EventPublisher, OutboxEvent
from tests.fakes.store import InMemoryStore, Transaction


class InMemoryOutbox:
    """Events added in a unit of work join the store's outbox, in order, when it commits."""

    def __init__(self, tx: Transaction) -> None:
        self._store = tx.store
        self._staged: list[OutboxEvent] = []
        tx.track(self)

    async def add(self, topic: str, key: str, payload: Mapping[str, Any]) -> None:
        self._staged.append(OutboxEvent(topic, key, dict(payload)))

    def apply(self) -> None:
        for event in self._staged:
            self._store.outbox[next(self._store.outbox_sequence)] = event
        self._staged.clear()

    def discard(self) -> None:
        self._staged.clear()


class InMemoryOutboxReader:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    async def relay_batch(self, publisher: EventPublisher, limit: int) -> int:
        store = self._store
        unclaimed = ((seq, event) for seq, event in store.outbox.items() if seq not in store.outbox_claimed)
        batch = list(itertools.islice(unclaimed, limit))
        claimed = {seq for seq, _ in batch}
        store.outbox_claimed |= claimed
        try:
            if batch:
                await publisher.publish_batch([event for _, event in batch])
            for seq in claimed:
                del store.outbox[seq]
        finally:
            store.outbox_claimed -= claimed
        return len(batch)

    async def backlog(self) -> int:
        return len(self._store.outbox)
