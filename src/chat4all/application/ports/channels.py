"""What the hub keeps about its users on the channels: their handles there, the provider's id of
every copy a connector sent, and the replies that came back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol
from uuid import UUID

import attrs

from chat4all.domain.channel_handles import InboundReply


@attrs.frozen
class SentCopy:
    """One copy a connector sent: `message_id` to `recipient_id`."""

    message_id: UUID
    recipient_id: UUID


@attrs.frozen
class UnmatchedReply:
    """A reply kept because the hub could not place it, and why (`unknown_handle`,
    `unknown_context` or `not_a_member`)."""

    reply: InboundReply
    reason: str
    received_at: datetime


class ChannelRecords(Protocol):
    async def handles_of(self, user_id: UUID) -> dict[str, str]:
        """The user's handles, by channel."""
        ...

    async def replace_handles(self, user_id: UUID, handles: Mapping[str, str]) -> None:
        """The user's handles become `handles`. Raises DuplicateKey when another user has one of
        them on the same channel (the unit of work must then be discarded)."""
        ...

    async def owner_of(self, channel: str, handle: str) -> UUID | None: ...

    async def sent_copy(self, channel: str, provider_message_id: str) -> SentCopy | None:
        """The copy the channel's provider knows by that id."""
        ...

    async def provider_ids(self, message_id: UUID) -> dict[tuple[str, UUID], str]:
        """The provider ids of the message's copies, by (channel, recipient)."""
        ...

    async def reply_message(self, channel: str, provider_message_id: str) -> UUID | None:
        """The message an inbound reply with that provider id became, if it was taken in."""
        ...

    async def record_reply(self, channel: str, provider_message_id: str, message_id: UUID, at: datetime) -> None:
        """Records that the reply became `message_id` (once: a second record of it is ignored)."""
        ...

    async def record_unmatched(self, reply: InboundReply, reason: str, at: datetime) -> None:
        """Keeps a reply the hub could not place, for operators (a retried one is kept once)."""
        ...

    async def unmatched(self, channel: str | None, limit: int) -> list[UnmatchedReply]:
        """The latest unmatched replies, newest first, on one channel or all."""
        ...
