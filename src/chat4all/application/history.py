"""Pages of a conversation's history that cost the same at any depth (see `domain.history`)."""

from __future__ import annotations

from uuid import UUID

import attrs

from chat4all.application.ports import UnitOfWorkFactory
from chat4all.domain.errors import NotFound
from chat4all.domain.history import HistoryCursor, PageLinks, PageRequest, page_links
from chat4all.domain.messages import Message


@attrs.frozen
class HistoryPage:
    messages: list[Message]
    total: int
    links: PageLinks
    offset: int = 0  # how many messages come before the page (positions have no gap)


@attrs.define
class ReadHistory:
    """Members only. `total` is the conversation's counter; the page is the range of positions the
    request names, read through the (conversation, position) index."""

    uow: UnitOfWorkFactory

    async def page(self, caller: UUID, conversation_id: UUID, request: PageRequest) -> HistoryPage:
        async with self.uow() as uow:
            conversation = await uow.conversations.get(conversation_id)
            if conversation is None:
                raise NotFound("no such conversation", code="conversation_not_found")
            conversation.require_member(caller)
            total = await uow.history.total(conversation_id)
            positions = request.positions(total)
            found = [] if positions.empty else await uow.history.at_positions(conversation_id, positions)
        cursors = [HistoryCursor(position, message.id) for position, message in found]
        links = page_links(total, cursors[0] if cursors else None, cursors[-1] if cursors else None)
        return HistoryPage([message for _, message in found], total, links, max(0, positions.first - 1))
