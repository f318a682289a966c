"""The hot path of the distributed profile: accepted messages stored by one statement per batch.

Every write of `MessageIntake.accept` goes into one data-modifying statement, run in autocommit
mode: no BEGIN, no pre-ping, no SQLAlchemy statement compilation (see `chat4all.adapters.sql.postgres`).
Requests that arrive while up to `max_in_flight` statements run share the next one (see
`chat4all.adapters.sql.group_commit`): under load the round trip, the commit and the waking of a
PostgreSQL backend are paid once per batch.

The conversations' rows are locked, in id order, before anything is inserted (every insert
depends on those locks, and the rows are sorted before the first insert), so two batches that
share conversations wait for one another instead of deadlocking, and a conversation's messages
get their outbox ids in the order they commit: the relay publishes them in that order.

A connection that broke before or during the statement (the server restarted, say) is replaced
and the statement sent once more: it inserts only the ids that are new, so running it twice never
stores anything twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from chat4all.adapters.sql.group_commit import GroupCommitIntake, PendingAccept
from chat4all.adapters.sql.message_rows import payload_to_json
from chat4all.adapters.sql.postgres.connections import translate_psycopg_errors
from chat4all.adapters.sql.postgres.parameters import history_json_rows
from chat4all.domain.messages import FilePayload

log = logging.getLogger(__name__)

ACCEPT_MANY = """
WITH input AS (
    SELECT * FROM json_to_recordset(%(messages)s::json) AS input(
        id uuid, conversation_id uuid, sender_id uuid, recipient_id uuid, channels json, payload json, priority text,
        status text, fingerprint text, created_at timestamptz, file_id uuid, shared_with uuid, topic text, key text,
        routing json, position bigint)
), conversation AS (
    SELECT id FROM conversations WHERE id IN (SELECT conversation_id FROM input) ORDER BY id FOR UPDATE
), new_message AS (
    INSERT INTO messages (id, conversation_id, sender_id, recipient_id, channels, payload, priority, status,
                          fingerprint, created_at)
    SELECT input.id, input.conversation_id, input.sender_id, input.recipient_id, input.channels, input.payload,
           input.priority, input.status, input.fingerprint, input.created_at
    FROM input JOIN conversation ON conversation.id = input.conversation_id
    ORDER BY input.position
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), deliveries AS (
    INSERT INTO message_deliveries (message_id, channel, status, updated_at)
    SELECT delivery.message_id, delivery.channel, delivery.status, delivery.updated_at
    FROM json_to_recordset(%(deliveries)s::json)
         AS delivery(message_id uuid, channel text, status text, updated_at timestamptz)
    JOIN new_message ON new_message.id = delivery.message_id
), events AS (
    INSERT INTO message_events (message_id, status, channel, at, detail)
    SELECT event.message_id, event.status, event.channel, event.at, event.detail
    FROM json_to_recordset(%(events)s::json)
         AS event(message_id uuid, status text, channel text, at timestamptz, detail text, position bigint)
    JOIN new_message ON new_message.id = event.message_id
    ORDER BY event.position
), activity AS (
    UPDATE conversations SET last_activity_at = latest.at
    FROM (SELECT input.conversation_id, max(input.created_at) AS at
          FROM input JOIN new_message ON new_message.id = input.id GROUP BY input.conversation_id) AS latest
    WHERE conversations.id = latest.conversation_id AND conversations.last_activity_at < latest.at
), share AS (
    INSERT INTO file_shares (file_id, conversation_id)
    SELECT DISTINCT input.file_id, input.shared_with
    FROM input JOIN new_message ON new_message.id = input.id
    WHERE input.file_id IS NOT NULL
    ON CONFLICT DO NOTHING
), routing AS (
    INSERT INTO outbox (topic, key, payload, created_at)
    SELECT input.topic, input.key, input.routing, input.created_at
    FROM input JOIN new_message ON new_message.id = input.id
    ORDER BY input.position
)
SELECT id FROM new_message
"""


def accept_many_parameters(batch: Sequence[PendingAccept]) -> dict[str, str]:
    """The statement's parameters: three JSON documents (messages, delivery rows, history entries),
    in the batch's order. One JSON text is many times cheaper for psycopg to send than an array
    per column, which it dumps element by element in Python."""
    rows: list[dict[str, object]] = []
    deliveries: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    for item in batch:
        message = item.message
        message_id = str(message.id)
        created_at = message.created_at.isoformat()
        shares = isinstance(message.payload, FilePayload) and item.file_shared_with is not None
        rows.append(
            {
                "id": message_id,
                "conversation_id": str(message.conversation_id),
                "sender_id": str(message.sender_id),
                "recipient_id": None if message.recipient_id is None else str(message.recipient_id),
                "channels": list(message.channels),
                "payload": payload_to_json(message.payload),
                "priority": message.priority.value,
                "status": message.status.value,
                "fingerprint": message.fingerprint,
                "created_at": created_at,
                "file_id": str(message.payload.file_id) if shares else None,  # type: ignore[union-attr]
                "shared_with": str(item.file_shared_with) if shares else None,
                "topic": item.routing.topic,
                "key": item.routing.key,
                "routing": dict(item.routing.payload),
                "position": len(rows),
            }
        )
        deliveries += [
            {"message_id": message_id, "channel": channel, "status": status.value, "updated_at": created_at}
            for channel, status in message.deliveries.items()
        ]
        events += history_json_rows(message, len(events))
    return {"messages": json.dumps(rows), "deliveries": json.dumps(deliveries), "events": json.dumps(events)}


class PostgresMessageIntake(GroupCommitIntake):
    """Implements `MessageIntake` on PostgreSQL (see the module docstring)."""

    def __init__(self, pool: AsyncConnectionPool, *, max_in_flight: int = 4, max_batch: int = 100) -> None:
        super().__init__(max_in_flight=max_in_flight, max_batch=max_batch)
        self._pool = pool

    async def store_batch(self, batch: list[PendingAccept]) -> set[UUID]:
        parameters = accept_many_parameters(batch)
        with translate_psycopg_errors():
            try:
                return await self._run(parameters)
            except psycopg.OperationalError as error:
                log.info("message intake connection lost (%s); retrying once on a new connection", error)
                return await self._run(parameters)

    async def _run(self, parameters: dict[str, str]) -> set[UUID]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(ACCEPT_MANY, parameters)
            return {row[0] for row in await cursor.fetchall()}
