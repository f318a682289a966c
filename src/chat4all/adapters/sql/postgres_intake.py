"""The hot path of the distributed profile: an accepted message stored in one round trip.

Every write of `MessageIntake.accept` goes into one data-modifying statement, run in autocommit
mode, so a message costs one network round trip and one commit: no BEGIN, no pre-ping, no
SQLAlchemy statement compilation (see `postgres_direct`).

The conversation's row is locked before anything is inserted (every insert depends on that
lock), so two messages of one conversation get their outbox ids in the order they commit, and
the relay publishes them in that order.

A connection that broke before or during the statement (the server restarted, say) is replaced
and the statement sent once more: it inserts only if the message id is new, so running it twice
never stores anything twice.
"""

from __future__ import annotations

import logging
from uuid import UUID

import psycopg
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool

from chat4all.adapters.sql.messages import payload_to_json
from chat4all.adapters.sql.postgres_direct import translate_psycopg_errors
from chat4all.application.ports import OutboxEvent
from chat4all.domain.messages import FilePayload, Message

log = logging.getLogger(__name__)

ACCEPT = """
WITH conversation AS (
    SELECT id FROM conversations WHERE id = %(conversation_id)s FOR UPDATE
), new_message AS (
    INSERT INTO messages (id, conversation_id, sender_id, recipient_id, channels, payload, priority, status,
                          fingerprint, created_at)
    SELECT %(id)s, conversation.id, %(sender_id)s, %(recipient_id)s, %(channels)s, %(payload)s,
           %(priority)s, %(status)s, %(fingerprint)s, %(created_at)s
    FROM conversation
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), deliveries AS (
    INSERT INTO message_deliveries (message_id, channel, status, updated_at)
    SELECT new_message.id, delivery.channel, delivery.status, %(created_at)s
    FROM new_message, unnest(%(delivery_channels)s::text[], %(delivery_statuses)s::text[]) AS delivery(channel, status)
), events AS (
    INSERT INTO message_events (message_id, status, channel, at, detail)
    SELECT new_message.id, event.status, event.channel, event.at, event.detail
    FROM new_message, unnest(%(event_statuses)s::text[], %(event_channels)s::text[], %(event_times)s::timestamptz[],
                             %(event_details)s::text[]) AS event(status, channel, at, detail)
), activity AS (
    UPDATE conversations SET last_activity_at = %(created_at)s
    WHERE id = %(conversation_id)s AND last_activity_at < %(created_at)s AND EXISTS (SELECT FROM new_message)
), share AS (
    INSERT INTO file_shares (file_id, conversation_id)
    SELECT %(file_id)s::uuid, %(shared_with)s::uuid FROM new_message WHERE %(file_id)s::uuid IS NOT NULL
    ON CONFLICT DO NOTHING
), routing AS (
    INSERT INTO outbox (topic, key, payload, created_at)
    SELECT %(topic)s, %(key)s, %(routing)s, %(created_at)s FROM new_message
)
SELECT count(*) FROM new_message
"""


def accept_parameters(message: Message, routing: OutboxEvent, file_shared_with: UUID | None) -> dict[str, object]:
    events = message.new_events
    file_id = message.payload.file_id if isinstance(message.payload, FilePayload) and file_shared_with else None
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "sender_id": message.sender_id,
        "recipient_id": message.recipient_id,
        "channels": Json(list(message.channels)),
        "payload": Json(payload_to_json(message.payload)),
        "priority": message.priority.value,
        "status": message.status.value,
        "fingerprint": message.fingerprint,
        "created_at": message.created_at,
        "delivery_channels": list(message.deliveries),
        "delivery_statuses": [status.value for status in message.deliveries.values()],
        "event_statuses": [event.status for event in events],
        "event_channels": [event.channel for event in events],
        "event_times": [event.at for event in events],
        "event_details": [event.detail for event in events],
        "file_id": file_id,
        "shared_with": file_shared_with,
        "topic": routing.topic,
        "key": routing.key,
        "routing": Json(dict(routing.payload)),
    }


class PostgresMessageIntake:
    """Implements `MessageIntake` on PostgreSQL (see the module docstring)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def accept(self, message: Message, routing: OutboxEvent, file_shared_with: UUID | None = None) -> bool:
        parameters = accept_parameters(message, routing, file_shared_with)
        with translate_psycopg_errors():
            try:
                row = await self._run(parameters)
            except psycopg.OperationalError as error:
                log.info("message intake connection lost (%s); retrying once on a new connection", error)
                row = await self._run(parameters)
        if row is None or row[0] not in (0, 1):
            raise RuntimeError(f"message intake returned {row!r}")
        message.new_events.clear()
        return row[0] == 1

    async def _run(self, parameters: dict[str, object]) -> tuple[int] | None:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(ACCEPT, parameters)
            return await cursor.fetchone()
