"""What each event type says, and to whom.

- `message.created`: the message as `GET /v1/messages/{id}` shows it, to every member of its
  conversation, the sender included (their other sessions learn of it too);
- `message.status`: the message's new overall status and the channel outcome or recipient
  receipt that changed, to the sender: the status is about delivering the sender's message (one
  per channel outcome recorded, see `batch_outcomes.record_outcomes`; the recipients already have
  the message, and telling every member would cost a row per member per outcome). A
  recipient's read does not produce one per message: the `conversation.read` every member gets
  says it for all messages up to a position at once. (Otherwise a member catching up on 500
  messages of a 100-member group would write 500 events to each sender.) The sender does get a
  `message.status` when a message becomes `read` by everyone;
- `conversation.created`: the conversation, to every member;
- `conversation.read`: who read up to which message (and position), when, to every member;
- `typing`: never stored; to the other members, live only.

No event about a conversation is addressed to anyone but its members.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from chat4all.domain.conversations import Conversation
from chat4all.domain.events import EphemeralEvent, EventType, PendingEvent, iso
from chat4all.domain.messages import FilePayload, Message, Payload
from chat4all.domain.receipts import ReadHorizon, Receipt


def payload_data(payload: Payload) -> dict[str, Any]:
    """A message's payload in JSON types: as the API shows it, events carry it and the database stores it."""
    if isinstance(payload, FilePayload):
        return {
            "type": "file",
            "file_id": str(payload.file_id),
            "filename": payload.filename,
            "file_size": payload.file_size,
            "content_type": payload.content_type,
            "checksum": payload.checksum,
        }
    return {"type": "text", "text": payload.text}


def message_data(message: Message) -> dict[str, Any]:
    """The message as `GET /v1/messages/{id}` shows it, in JSON types."""
    return {
        "message_id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "from": str(message.sender_id),
        "to": None if message.recipient_id is None else str(message.recipient_id),
        "channels": list(message.channels),
        "payload": payload_data(message.payload),
        "priority": message.priority.value,
        "status": message.status.value,
        "created_at": iso(message.created_at),
        "origin": message.origin,
        "failover": list(message.failover),
        "deliveries": {channel: status.value for channel, status in message.deliveries.items()},
        "history": [
            {"status": entry.status, "channel": entry.channel, "at": iso(entry.at), "detail": entry.detail}
            for entry in message.history
        ],
    }


def receipt_data(receipt: Receipt) -> dict[str, Any]:
    return {
        "recipient_id": str(receipt.recipient_id),
        "delivered_at": None if receipt.delivered_at is None else iso(receipt.delivered_at),
        "read_at": None if receipt.read_at is None else iso(receipt.read_at),
    }


def message_created(message: Message, conversation: Conversation) -> list[PendingEvent]:
    data = message_data(message)
    return [PendingEvent(member, EventType.MESSAGE_CREATED, message.created_at, data) for member in conversation.members]


def message_status(
    message: Message,
    at: datetime,
    *,
    channel: str | None = None,
    failure: str | None = None,
    receipt: Receipt | None = None,
) -> list[PendingEvent]:
    """What changed about the sender's message: its status now, when everyone had read it, and
    the channel outcome (with `failure`, why the channel failed) or the recipient's receipt behind
    the change (at most one of the two; neither when the change is that everyone has read it)."""
    if channel is not None and receipt is not None:
        raise ValueError("a status event tells one change: a channel outcome or a receipt")
    data: dict[str, Any] = {
        "message_id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "status": message.status.value,
        "read_by_all_at": None if message.read_by_all_at is None else iso(message.read_by_all_at),
        "channel": None,
        "receipt": None,
    }
    if channel is not None:
        data["channel"] = {"name": channel, "status": message.deliveries[channel].value, "detail": failure}
    if receipt is not None:
        data["receipt"] = receipt_data(receipt)
    return [PendingEvent(message.sender_id, EventType.MESSAGE_STATUS, at, data)]


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    """The conversation as `GET /v1/conversations/{id}` shows it, in JSON types."""
    return {
        "conversation_id": str(conversation.id),
        "type": conversation.type.value,
        "members": [str(member) for member in conversation.members],
        "metadata": {"name": conversation.metadata.name, "description": conversation.metadata.description},
        "created_at": iso(conversation.created_at),
        "last_activity_at": iso(conversation.last_activity_at),
    }


def conversation_created(conversation: Conversation) -> list[PendingEvent]:
    data = conversation_data(conversation)
    return [
        PendingEvent(member, EventType.CONVERSATION_CREATED, conversation.created_at, data) for member in conversation.members
    ]


def conversation_read(conversation: Conversation, horizon: ReadHorizon) -> list[PendingEvent]:
    """`horizon` has just advanced: tells every member (the reader's other sessions included)."""
    if horizon.read_at is None or horizon.message_id is None:
        raise ValueError("a horizon that was never advanced has nothing to tell")
    data = {
        "conversation_id": str(conversation.id),
        "reader_id": str(horizon.member_id),
        "up_to": str(horizon.message_id),
        "position": horizon.position,
        "at": iso(horizon.read_at),
    }
    return [PendingEvent(member, EventType.CONVERSATION_READ, horizon.read_at, data) for member in conversation.members]


def typing(conversation: Conversation, user_id: UUID, at: datetime, until: datetime) -> tuple[EphemeralEvent, list[UUID]]:
    """A typing notice and who gets it: the other members (the typist must be one)."""
    conversation.require_member(user_id)
    data = {"conversation_id": str(conversation.id), "user_id": str(user_id), "until": iso(until)}
    others = [member for member in conversation.members if member != user_id]
    return EphemeralEvent(EventType.TYPING, at, data), others
