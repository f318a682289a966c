"""History pages by position (`MessageHistory`, both engines): the conversation's counter as the
total, and a range of positions read through the (conversation_id, position) index; no COUNT,
no OFFSET, so the millionth message costs what the first does."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select

from chat4all.adapters.sql.message_rows import message_from_row
from chat4all.adapters.sql.messages import MESSAGE_COLUMNS, MessageReads
from chat4all.adapters.sql.tables import conversations, messages
from chat4all.domain.history import PositionRange
from chat4all.domain.messages import Message


class SqlMessageHistory(MessageReads):
    async def total(self, conversation_id: UUID) -> int:
        count = select(conversations.c.message_count).where(conversations.c.id == conversation_id)
        return int((await self._execute(count)).scalar() or 0)

    async def at_positions(self, conversation_id: UUID, positions: PositionRange) -> list[tuple[int, Message]]:
        if positions.empty:
            return []
        rows = (
            await self._execute(
                select(*MESSAGE_COLUMNS)
                .where(
                    messages.c.conversation_id == conversation_id,
                    messages.c.position >= positions.first,
                    messages.c.position <= positions.last,
                )
                .order_by(messages.c.position)
            )
        ).all()
        deliveries = await self._deliveries_of([row.id for row in rows])
        return [(row.position, message_from_row(row, deliveries[row.id], [])) for row in rows]

    async def latest(self, conversation_ids: Sequence[UUID]) -> dict[UUID, Message]:
        if not conversation_ids:
            return {}
        rows = (
            await self._execute(
                select(*MESSAGE_COLUMNS)
                .join(conversations, conversations.c.last_message_id == messages.c.id)
                .where(conversations.c.id.in_(set(conversation_ids)))
            )
        ).all()
        deliveries = await self._deliveries_of([row.id for row in rows])
        return {row.conversation_id: message_from_row(row, deliveries[row.id], []) for row in rows}
