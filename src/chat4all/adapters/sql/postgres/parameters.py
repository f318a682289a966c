"""Parameters of the direct statements: psycopg dumps a Python list element by element in Python
(~125-300 us per message here), so the statements take lists as one string each: JSON documents
read with `json_to_recordset`, and `uuid[]` literals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from chat4all.domain.messages import Message


def uuid_array(ids: Iterable[UUID]) -> str:
    """A `uuid[]` literal, sent as one string."""
    return "{" + ",".join(map(str, ids)) + "}"


def history_json_rows(message: Message, first_position: int) -> list[dict[str, Any]]:
    """A message's new history entries as JSON rows for `message_events`; `position` (from
    `first_position`) keeps their order across the whole statement."""
    return [
        {
            "message_id": str(message.id),
            "status": event.status,
            "channel": event.channel,
            "at": event.at.isoformat(),
            "detail": event.detail,
            "position": first_position + offset,
        }
        for offset, event in enumerate(message.new_events)
    ]
