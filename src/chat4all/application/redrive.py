"""Re-sending the routing event of messages left unfinished.

Events can be lost between processes (a crash after commit and before publish, a bus that kept
them in memory, a bus handler that failed); routing and delivery are idempotent (the connectors
send each (channel, message, recipient) once, see `DeliverMessage`), so sending again is safe.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from uuid import UUID

import attrs

from chat4all.application.ports import Clock, EventPublisher, UnitOfWorkFactory
from chat4all.application.work import RouteRequested, encode
from chat4all.domain.messages import Message

log = logging.getLogger(__name__)


@attrs.define
class RedriveUnfinished:
    """Re-sends the routing event of messages that have sat unfinished for too long.

    Events can be lost between processes (a crash after commit and before publish, a bus
    handler that failed); routing and delivery are idempotent, so sending again is safe.
    A message merely queued behind a backlog would be sent again too, so the threshold is
    long and each sweep bounded: re-drives stay a trickle however large the backlog grows.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    publisher: EventPublisher
    older_than: timedelta = timedelta(seconds=120)
    batch: int = 100

    async def execute(self) -> int:
        async with self.uow() as uow:
            stuck = await uow.messages.unfinished_before(self.clock.now() - self.older_than, self.batch)
        for message in stuck:
            log.warning("re-driving message %s, still %s", message.id, message.status.value)
            await self._publish(message)
        return len(stuck)

    async def execute_all(self) -> int:
        """Re-sends the routing event of every message unfinished now, whatever its age, oldest
        first (so each conversation keeps its order), a page of `batch` at a time.

        For start-up, where the events of a previous run can only have been lost: a bus that
        kept them in memory (the embedded profile) lost the work in flight when the process
        stopped, and waiting for the sweep's threshold would leave it there for minutes."""
        cutoff = self.clock.now()
        after: tuple[datetime, UUID] | None = None
        total = 0
        while True:
            async with self.uow() as uow:
                page = await uow.messages.unfinished_before(cutoff, self.batch, after=after)
            for message in page:
                await self._publish(message)
            total += len(page)
            if len(page) < self.batch:
                return total
            after = (page[-1].created_at, page[-1].id)

    async def _publish(self, message: Message) -> None:
        event = encode(RouteRequested(message.id), message.conversation_id)
        await self.publisher.publish(event.topic, event.key, event.payload)
