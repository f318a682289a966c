"""The hot path of the distributed profile: an accepted message stored in one round trip.

Every write of `MessageIntake.accept` goes into one data-modifying statement, run in autocommit
mode, so a message costs one network round trip and one commit: no BEGIN, no pre-ping, no
SQLAlchemy statement compilation. It has a small psycopg pool of its own, because the engine's
pool checks each connection with a round trip before handing it out.

A connection that broke before or during the statement (the server restarted, say) is replaced
and the statement sent once more: it inserts only if the message id is new, so running it twice
never stores anything twice.
"""

from __future__ import annotations

import logging
from uuid import UUID

import psycopg
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import make_url

from chat4all.application.ports import OutboxEvent
from chat4all.adapters.sql.messages import payload_to_json
from chat4all.domain.errors import InvalidInput, Unavailable
from chat4all.domain.messages import FilePayload, Message

log = logging.getLogger(__name__)

ACCEPT = """
WITH new_message AS (
    INSERT INTO messages (id, conversation_id, sender_id, recipient_id, channels, payload, priority, status,
                          fingerprint, created_at)
    VALUES (%(id)s, %(conversation_id)s, %(sender_id)s, %(recipient_id)s, %(channels)s, %(payload)s,
            %(priority)s, %(status)s, %(fingerprint)s, %(created_at)s)
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


def conninfo_of(database_url: str) -> str:
    """The libpq connection string of a `postgresql+psycopg://` SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


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

    def __init__(self, database_url: str, *, max_connections: int = 10, timeout: float = 10.0, connect_timeout: int = 5) -> None:
        self._pool = AsyncConnectionPool(
            conninfo_of(database_url),
            min_size=1,
            max_size=max_connections,
            timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout, "application_name": "chat4all-intake"},
            open=False,
            name="message-intake",
        )

    async def start(self) -> None:
        await self._pool.open(wait=False)

    async def stop(self) -> None:
        await self._pool.close()

    async def accept(self, message: Message, routing: OutboxEvent, file_shared_with: UUID | None = None) -> bool:
        parameters = accept_parameters(message, routing, file_shared_with)
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as connection:
                    cursor = await connection.execute(ACCEPT, parameters)
                    row = await cursor.fetchone()
            except PoolTimeout as error:
                raise Unavailable("database unavailable") from error
            except psycopg.DataError as error:
                log.warning("database refused a value: %s", type(error).__name__)
                raise InvalidInput("a value in the request cannot be stored", code="unstorable_value") from error
            except psycopg.OperationalError as error:
                if attempt == 1:
                    log.info("message intake connection lost (%s); retrying once on a new connection", error)
                    continue
                log.warning("database unavailable: %s: %s", type(error).__name__, error)
                raise Unavailable("database unavailable") from error
            else:
                if row is None or row[0] not in (0, 1):
                    raise RuntimeError(f"message intake returned {row!r}")
                message.new_events.clear()
                return row[0] == 1
        raise AssertionError("unreachable")
