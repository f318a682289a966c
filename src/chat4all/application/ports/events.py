"""Events: written to the outbox with the change that caused them, then published to the bus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs


@attrs.frozen
class OutboxEvent:
    topic: str
    key: str
    payload: Mapping[str, Any]


class Outbox(Protocol):
    """Events written in the same transaction as the state change that caused them."""

    async def add(self, topic: str, key: str, payload: Mapping[str, Any]) -> None: ...


class EventPublisher(Protocol):
    async def publish(self, topic: str, key: str, payload: Mapping[str, Any]) -> None: ...

    async def publish_batch(self, events: Sequence[OutboxEvent]) -> None:
        """Returns only once every event is durably handed over (e.g. acknowledged by the broker)."""
        ...


class OutboxReader(Protocol):
    async def relay_batch(self, publisher: EventPublisher, limit: int) -> int:
        """Claims up to `limit` pending events (skipping rows other relays hold), publishes them
        and deletes them in one transaction; a failed publish leaves them for the next attempt.
        Returns how many were relayed."""
        ...

    async def backlog(self) -> int:
        """How many events wait to be relayed."""
        ...


class OutboxSignal(Protocol):
    """Tells the relay that new outbox events were committed, so it need not wait for its next poll."""

    def notify(self) -> None: ...
