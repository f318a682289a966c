"""In-memory `ChannelRecords`: handles, the providers' ids of sent copies, and inbound replies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from chat4all.application.errors import DuplicateKey
from chat4all.application.ports import SentCopy, UnmatchedReply
from chat4all.domain.channel_handles import InboundReply
from tests.fakes.store import Transaction


class InMemoryChannelRecords:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._handles = tx.table(tx.store.channel_handles)
        self._replies = tx.table(tx.store.inbound_replies)
        self._unmatched = tx.table(tx.store.unmatched_inbound)
        self._copies = tx.store.provider_copies  # written by the connectors, never in a unit of work

    async def handles_of(self, user_id: UUID) -> dict[str, str]:
        keys = self._handles.select_keys(lambda key, handle: key[0] == user_id and handle is not None)
        return {channel: self._handles.get((user, channel)) for user, channel in sorted(keys, key=lambda k: k[1])}

    async def replace_handles(self, user_id: UUID, handles: Mapping[str, str]) -> None:
        for user, channel in self._handles.select_keys(lambda key, _handle: key[0] == user_id):
            self._handles.put((user, channel), None)
        for channel, handle in handles.items():
            if await self.owner_of(channel, handle) not in (None, user_id):
                raise self._tx.duplicate(DuplicateKey("another user has this handle on this channel"))
            self._handles.put((user_id, channel), handle)

    async def owner_of(self, channel: str, handle: str) -> UUID | None:
        owners = self._handles.select_keys(lambda key, value: key[1] == channel and value == handle)
        return owners[0][0] if owners else None

    async def sent_copy(self, channel: str, provider_message_id: str) -> SentCopy | None:
        return self._copies.get((channel, provider_message_id))

    async def provider_ids(self, message_id: UUID) -> dict[tuple[str, UUID], str]:
        return {
            (channel, copy.recipient_id): provider_id
            for (channel, provider_id), copy in self._copies.items()
            if copy.message_id == message_id
        }

    async def reply_message(self, channel: str, provider_message_id: str) -> UUID | None:
        return self._replies.get((channel, provider_message_id))

    async def record_reply(self, channel: str, provider_message_id: str, message_id: UUID, at: datetime) -> None:
        if not self._replies.has((channel, provider_message_id)):
            self._replies.put((channel, provider_message_id), message_id)

    async def record_unmatched(self, reply: InboundReply, reason: str, at: datetime) -> None:
        if not self._unmatched.has((reply.channel, reply.provider_message_id)):
            self._unmatched.put((reply.channel, reply.provider_message_id), UnmatchedReply(reply, reason, at))

    async def unmatched(self, channel: str | None, limit: int) -> list[UnmatchedReply]:
        keys = self._unmatched.select_keys(lambda key, _kept: channel is None or key[0] == channel)
        kept = [self._unmatched.get(key) for key in keys]
        return sorted(kept, key=lambda one: one.received_at, reverse=True)[:limit]
