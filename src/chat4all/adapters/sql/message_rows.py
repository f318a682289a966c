"""A message as rows of the `messages` and `message_events` tables, and back: the one encoding
every writer of those tables shares, whatever the engine or driver (SQLAlchemy rows and psycopg
named tuples read back alike). The payload is stored in the JSON shape events and the API give
it (`domain.event_data.payload_data`)."""

from __future__ import annotations

from datetime import UTC
from typing import Any
from uuid import UUID

from chat4all.domain.event_data import payload_data
from chat4all.domain.messages import (
    DeliveryStatus,
    FilePayload,
    Message,
    MessageStatus,
    Payload,
    Priority,
    StatusEvent,
    TextPayload,
)


def payload_from_json(data: dict[str, Any]) -> Payload:
    if data["type"] == "text":
        return TextPayload(data["text"])
    return FilePayload(
        file_id=UUID(data["file_id"]),
        filename=data["filename"],
        file_size=data["file_size"],
        content_type=data["content_type"],
        checksum=data["checksum"],
    )


def message_from_row(row: Any, deliveries: dict[str, DeliveryStatus], history: list[StatusEvent]) -> Message:
    """A message from a row with the `messages` columns as attributes (a SQLAlchemy row, or a
    psycopg named tuple; `seq` and `position` are not needed); deliveries follow the order of
    the message's chain (its channels, then its failover channels)."""
    channels = tuple(row.channels)
    failover = tuple(row.failover or ())
    ordered = {channel: deliveries[channel] for channel in channels + failover if channel in deliveries}
    ordered.update(deliveries)
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        sender_id=row.sender_id,
        recipient_id=row.recipient_id,
        channels=channels,
        payload=payload_from_json(row.payload),
        priority=Priority(row.priority),
        fingerprint=row.fingerprint,
        status=MessageStatus(row.status),
        created_at=row.created_at.astimezone(UTC),
        deliveries=ordered,
        history=history,
        read_by_all_at=None if row.read_by_all_at is None else row.read_by_all_at.astimezone(UTC),
        failover=failover,
        origin=row.origin,
    )


def message_row(message: Message) -> dict[str, Any]:
    """The `messages` row of a message (without `seq` and `position`, which the database or the
    caller assign, and `read_by_all_at`, which is never set on a new message)."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "sender_id": message.sender_id,
        "recipient_id": message.recipient_id,
        "channels": list(message.channels),
        "payload": payload_data(message.payload),
        "priority": message.priority.value,
        "status": message.status.value,
        "fingerprint": message.fingerprint,
        "created_at": message.created_at,
        "failover": list(message.failover) or None,
        "origin": message.origin,
    }


def history_rows(message: Message) -> list[dict[str, Any]]:
    """The `message_events` rows of a message's new history entries, in order."""
    return [
        {"message_id": message.id, "status": event.status, "channel": event.channel, "at": event.at, "detail": event.detail}
        for event in message.new_events
    ]


