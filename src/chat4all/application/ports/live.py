"""What live connections need besides the event log itself: ephemeral events (`typing`), handed to
the live connections of users in every API process they may be connected to and forgotten (never
stored, no seq, never replayed); and where users' logs end, to notice a wake-up that was lost."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol
from uuid import UUID

from chat4all.domain.events import EphemeralEvent

Deliver = Callable[[EphemeralEvent], None]


class LiveNotices(Protocol):
    def subscribe(self, user_id: UUID, deliver: Deliver) -> AbstractContextManager[None]:
        """While the context is open, `deliver` is called (in this process's event loop, without
        blocking) with every ephemeral event published to `user_id`."""
        ...

    async def publish(self, user_ids: Sequence[UUID], event: EphemeralEvent) -> None:
        """Hands `event` to every subscriber of these users, wherever they are connected; at most
        once, and not at all if nobody listens (it is not kept for later)."""
        ...


class EventLogHeads(Protocol):
    async def last_seqs(self, user_ids: Sequence[UUID]) -> dict[UUID, int]:
        """Each user's last seq (their counter), in one query for all of them; users who never had
        an event are left out."""
        ...
