"""`MessageBatches` over any unit of work, for adapters that have no faster way (see the port)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

import attrs

from chat4all.application.ports import UnitOfWorkFactory
from chat4all.domain.messages import Message


@attrs.define
class UnitOfWorkMessageBatches:
    """The `MessageBatches` of any unit of work: `get_many`, `update_many` and `commit`.
    (An adapter may do the same in fewer round trips; the PostgreSQL one does a change in two.)"""

    uow: UnitOfWorkFactory

    async def read(self, message_ids: Sequence[UUID]) -> dict[UUID, Message]:
        if not message_ids:
            return {}
        async with self.uow() as uow:
            return await uow.messages.get_many(message_ids)

    async def change(
        self, message_ids: Sequence[UUID], apply: Callable[[dict[UUID, Message]], Sequence[Message]]
    ) -> dict[UUID, Message]:
        if not message_ids:
            return {}
        async with self.uow() as uow:
            found = await uow.messages.get_many(message_ids, for_update=True)
            changed = apply(found)
            if changed:
                await uow.messages.update_many(changed)
                await uow.commit()
        return found
