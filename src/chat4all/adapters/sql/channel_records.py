"""`ChannelRecords` on SQLAlchemy, for SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, exc, insert, select

from chat4all.adapters.sql.base import SqlRepository
from chat4all.adapters.sql.channel_tables import inbound_replies, unmatched_inbound, user_channel_handles
from chat4all.adapters.sql.errors import is_unique_violation
from chat4all.adapters.sql.tables import connector_sends
from chat4all.application.errors import DuplicateKey
from chat4all.application.ports import SentCopy, UnmatchedReply
from chat4all.domain.channel_handles import InboundReply


class SqlChannelRecords(SqlRepository):
    async def handles_of(self, user_id: UUID) -> dict[str, str]:
        query = select(user_channel_handles.c.channel, user_channel_handles.c.handle).where(
            user_channel_handles.c.user_id == user_id
        )
        return {row.channel: row.handle for row in await self._execute(query.order_by(user_channel_handles.c.channel))}

    async def replace_handles(self, user_id: UUID, handles: Mapping[str, str]) -> None:
        await self._execute(delete(user_channel_handles).where(user_channel_handles.c.user_id == user_id))
        if not handles:
            return
        rows = [{"user_id": user_id, "channel": channel, "handle": handle} for channel, handle in handles.items()]
        try:
            await self._execute(insert(user_channel_handles), rows)
        except exc.IntegrityError as error:
            if is_unique_violation(error):
                raise DuplicateKey("another user has this handle on this channel") from error
            raise

    async def owner_of(self, channel: str, handle: str) -> UUID | None:
        query = select(user_channel_handles.c.user_id).where(
            user_channel_handles.c.channel == channel, user_channel_handles.c.handle == handle
        )
        return (await self._execute(query)).scalar()

    async def sent_copy(self, channel: str, provider_message_id: str) -> SentCopy | None:
        query = select(connector_sends.c.message_id, connector_sends.c.recipient_id).where(
            connector_sends.c.channel == channel, connector_sends.c.provider_message_id == provider_message_id
        )
        row = (await self._execute(query)).first()
        return None if row is None else SentCopy(row.message_id, row.recipient_id)

    async def provider_ids(self, message_id: UUID) -> dict[tuple[str, UUID], str]:
        sends = connector_sends.c
        query = select(sends.channel, sends.recipient_id, sends.provider_message_id).where(
            sends.message_id == message_id, sends.provider_message_id.is_not(None)
        )
        return {(row.channel, row.recipient_id): row.provider_message_id for row in await self._execute(query)}

    async def reply_message(self, channel: str, provider_message_id: str) -> UUID | None:
        query = select(inbound_replies.c.message_id).where(
            inbound_replies.c.channel == channel, inbound_replies.c.provider_message_id == provider_message_id
        )
        return (await self._execute(query)).scalar()

    async def record_reply(self, channel: str, provider_message_id: str, message_id: UUID, at: datetime) -> None:
        row = {"channel": channel, "provider_message_id": provider_message_id, "message_id": message_id}
        row["received_at"] = at
        await self._execute(self._insert_ignoring_duplicates(inbound_replies).values(row))

    async def record_unmatched(self, reply: InboundReply, reason: str, at: datetime) -> None:
        row = {
            "channel": reply.channel,
            "provider_message_id": reply.provider_message_id,
            "sender_handle": reply.sender_handle,
            "context_id": reply.context_id,
            "text": reply.text,
            "reason": reason,
            "received_at": at,
        }
        await self._execute(self._insert_ignoring_duplicates(unmatched_inbound).values(row))

    async def unmatched(self, channel: str | None, limit: int) -> list[UnmatchedReply]:
        kept = unmatched_inbound.c
        query = select(unmatched_inbound).order_by(kept.received_at.desc(), kept.provider_message_id).limit(limit)
        if channel is not None:
            query = query.where(kept.channel == channel)
        return [
            UnmatchedReply(
                InboundReply(row.channel, row.sender_handle, row.text, row.provider_message_id, row.context_id),
                row.reason,
                row.received_at,
            )
            for row in await self._execute(query)
        ]
