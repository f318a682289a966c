"""Where users' event logs end, over the in-memory store's committed counters."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from tests.fakes.store import InMemoryStore


class InMemoryEventLogHeads:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.queries = 0

    async def last_seqs(self, user_ids: Sequence[UUID]) -> dict[UUID, int]:
        self.queries += 1
        return {user_id: self._store.event_counters[user_id] for user_id in user_ids if user_id in self._store.event_counters}
