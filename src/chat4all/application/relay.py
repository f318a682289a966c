from __future__ import annotations

import attrs

from chat4all.application.ports import EventPublisher, OutboxReader


@attrs.define
class RelayOutbox:
    """Moves events committed with their state changes out to the event bus, in commit order."""

    outbox: OutboxReader
    publisher: EventPublisher
    batch_size: int = 500

    async def execute(self) -> int:
        return await self.outbox.relay_batch(self.publisher, self.batch_size)
