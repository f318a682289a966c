"""Replies that come back from a channel's provider and join the conversation they answer.

A provider signs what it posts as Meta signs its webhooks: `X-Hub-Signature-256: sha256=<hex
HMAC-SHA256 of the raw body>`, with the channel's secret. The body is the provider's message:
`{"from": <sender's handle>, "id": <provider message id>, "text": {"body": ...}, "context":
{"id": <provider id of the message it answers>}}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection, Mapping
from typing import Any
from uuid import UUID

import attrs

from chat4all.application.messaging import SendMessage, SendRequest
from chat4all.application.ports import Clock, UnitOfWork, UnitOfWorkFactory, UnmatchedReply
from chat4all.domain.channel_handles import InboundReply, handle_for, inbound_message_id
from chat4all.domain.conversations import Conversation
from chat4all.domain.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from chat4all.domain.messages import Message, Priority

SIGNATURE_PREFIX = "sha256="
MAX_PROVIDER_ID = 256
MAX_UNMATCHED_LISTED = 1000


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    if header is None or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header[len(SIGNATURE_PREFIX) :].strip().lower().encode())


def parse_reply(channel: str, body: bytes) -> InboundReply:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        raise InvalidInput("the body is not JSON", code="invalid_inbound") from None
    fields = {
        "from": _text(data, "from"),
        "id": _text(data, "id"),
        "text.body": _text(data, "text", "body"),
        "context.id": _text(data, "context", "id"),
    }
    errors = {name: ["a non-empty string"] for name, value in fields.items() if not value}
    for name in ("id", "context.id"):
        if len(fields[name] or "") > MAX_PROVIDER_ID:
            errors[name] = [f"at most {MAX_PROVIDER_ID} characters"]
    if errors:
        names = ", ".join(sorted(errors))
        raise InvalidInput(f"invalid inbound reply: {names}", code="invalid_inbound", field_errors=errors)
    sender, text, provider_id, context_id = (fields[name] or "" for name in ("from", "text.body", "id", "context.id"))
    return InboundReply(channel, sender, text, provider_id, context_id)


def _text(data: Any, *path: str) -> str | None:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, str) and data else None


@attrs.frozen
class InboundOutcome:
    message_id: UUID | None  # the message the reply became; None: not placed (see `unmatched`)
    duplicate: bool = False  # the provider sent it before: nothing changed
    unmatched: str | None = None  # why it could not be placed: unknown_handle, unknown_context, not_a_member


@attrs.define
class ReceiveReply:
    """Rules: only a channel with a connector and a configured secret takes replies, each signed with
    that secret. The sender is the user with that handle on the channel; the conversation is that of
    the message the reply answers, which the sender must be a member of. The reply is sent as that
    user, to the conversation's other members, on the answered message's channels, marked with its
    origin. A provider message id is taken in once; a reply that cannot be placed is kept as
    unmatched (and answered as taken: the provider must not retry it)."""

    uow: UnitOfWorkFactory
    clock: Clock
    send_message: SendMessage
    channels: Collection[str]
    secrets: Mapping[str, str]

    async def execute(self, channel: str, body: bytes, signature: str | None) -> InboundOutcome:
        if channel not in self.channels:
            raise NotFound(f"no channel {channel!r}", code="unknown_channel")
        secret = self.secrets.get(channel)
        if not secret:
            raise Forbidden(f"inbound replies on {channel} are off: it has no signing secret", code="inbound_disabled")
        if not signature_matches(secret, body, signature):
            raise NotAuthenticated(
                "the X-Hub-Signature-256 signature does not match the body", code="invalid_signature"
            )
        return await self.take_in(parse_reply(channel, body))

    async def take_in(self, reply: InboundReply) -> InboundOutcome:
        async with self.uow() as uow:
            earlier = await uow.channels.reply_message(reply.channel, reply.provider_message_id)
            if earlier is not None:
                return InboundOutcome(earlier, duplicate=True)
            handle = handle_for(reply.channel, reply.sender_handle)
            sender = None if handle is None else await uow.channels.owner_of(reply.channel, handle)
            context, conversation = await self._answered(uow, reply)
        if sender is None:
            return await self._unmatched(reply, "unknown_handle")
        if context is None or conversation is None:
            return await self._unmatched(reply, "unknown_context")
        if not conversation.has_member(sender):
            return await self._unmatched(reply, "not_a_member")
        message = await self._send(reply, sender, context, conversation)
        async with self.uow() as uow:
            await uow.channels.record_reply(reply.channel, reply.provider_message_id, message.id, self.clock.now())
            await uow.commit()
        return InboundOutcome(message.id)

    async def _answered(self, uow: UnitOfWork, reply: InboundReply) -> tuple[Message | None, Conversation | None]:
        copy = await uow.channels.sent_copy(reply.channel, reply.context_id)
        context = None if copy is None else await uow.messages.get(copy.message_id)
        conversation = None if context is None else await uow.conversations.get(context.conversation_id)
        return context, conversation

    async def _send(self, reply: InboundReply, sender: UUID, context: Message, conversation: Conversation) -> Message:
        # The reply's id comes from its provider id: a retry that got past the check above (the
        # first try stopped before recording it) finds the message and adds nothing.
        request = SendRequest(
            message_id=inbound_message_id(reply.channel, reply.provider_message_id),
            conversation_id=conversation.id,
            sender_id=sender,
            recipient_id=None,
            channels=tuple(channel for channel in context.channels if channel in self.channels) or (reply.channel,),
            text=reply.text,
            file_id=None,
            priority=Priority.NORMAL,
            origin=reply.channel,
        )
        return await self.send_message.execute(sender, request)

    async def _unmatched(self, reply: InboundReply, reason: str) -> InboundOutcome:
        async with self.uow() as uow:
            await uow.channels.record_unmatched(reply, reason, self.clock.now())
            await uow.commit()
        return InboundOutcome(None, unmatched=reason)


@attrs.define
class ListUnmatchedReplies:
    """For operators: the replies kept because the hub could not place them, newest first, so a
    misconfigured handle or a provider answering unknown messages can be found and fixed."""

    uow: UnitOfWorkFactory
    channels: Collection[str]

    async def execute(self, channel: str | None = None, limit: int = 50) -> list[UnmatchedReply]:
        if channel is not None and channel not in self.channels:
            raise NotFound(f"no channel {channel!r}", code="unknown_channel")
        if not 1 <= limit <= MAX_UNMATCHED_LISTED:
            raise InvalidInput(f"limit must be between 1 and {MAX_UNMATCHED_LISTED}", code="invalid_limit")
        async with self.uow() as uow:
            return await uow.channels.unmatched(channel, limit)
