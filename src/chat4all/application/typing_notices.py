"""Typing notices: ephemeral, to the other members of a conversation, rate-limited.

A member may say they are typing in a conversation at most once per `interval` (per user and
conversation, in this process); what comes more often is dropped without an answer, as clients
commonly send one per keystroke. The notice says until when to show it (`lasts` from now), so
a client that stops sending lets it lapse on its own. Only members may send one and only the
other members receive it (`domain.event_data.typing`).
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import attrs

from chat4all.application.ports import Cache, CacheFactory, Clock, LiveNotices, UnitOfWorkFactory
from chat4all.domain.errors import NotFound
from chat4all.domain.event_data import typing

RECENT_TYPISTS = 100_000  # (user, conversation) pairs remembered for the rate limit


@attrs.define
class SendTyping:
    uow: UnitOfWorkFactory
    clock: Clock
    notices: LiveNotices
    interval: timedelta = timedelta(seconds=2)
    lasts: timedelta = timedelta(seconds=5)
    caches: CacheFactory = attrs.field(kw_only=True)
    _recent: Cache[tuple[UUID, UUID], bool] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._recent = self.caches(RECENT_TYPISTS)

    async def execute(self, caller: UUID, conversation_id: UUID) -> bool:
        """Sends the notice; False when it came too soon after the last one (nothing is sent).
        Raises NotFound or Forbidden (not a member)."""
        now = self.clock.now()
        key = (caller, conversation_id)
        if self._recent.get(key, now) is not None:
            return False
        # Counted before the membership check, so an outsider's attempts are limited as well.
        self._recent.put(key, True, until=now + self.interval)
        async with self.uow() as uow:
            conversation = await uow.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound("no such conversation", code="conversation_not_found")
        event, others = typing(conversation, caller, now, now + self.lasts)
        await self.notices.publish(others, event)
        return True
