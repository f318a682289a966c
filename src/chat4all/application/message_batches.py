"""`MessageBatches` over any unit of work, for adapters that have no faster way (see the port)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

import attrs

from chat4all.application.ports import BatchWrite, UnitOfWorkFactory
from chat4all.domain.messages import Message


@attrs.define
class UnitOfWorkMessageBatches:
    """The `MessageBatches` of any unit of work: `get_many`, `update_many`, the receipts, the event
    log and `commit`.
    (An adapter may do the same in fewer round trips; the PostgreSQL one does a change in two.)"""

    uow: UnitOfWorkFactory

    async def read(self, message_ids: Sequence[UUID]) -> dict[UUID, Message]:
        if not message_ids:
            return {}
        async with self.uow() as uow:
            return await uow.messages.get_many(message_ids)

    async def change(
        self, message_ids: Sequence[UUID], apply: Callable[[dict[UUID, Message]], BatchWrite]
    ) -> dict[UUID, Message]:
        if not message_ids:
            return {}
        async with self.uow() as uow:
            found = await uow.messages.get_many(message_ids, for_update=True)
            write = apply(found)
            if write.messages:
                await uow.messages.update_many(write.messages)
            if write.delivered_receipts:
                assert write.at is not None
                await uow.receipts.mark_delivered(write.delivered_receipts, write.at)
            if write.attempts:
                await uow.receipts.record_attempts(write.attempts)
            if write.events:
                await uow.events.append(write.events)
            if write.messages or write.delivered_receipts or write.events:
                await uow.commit()
        return found
