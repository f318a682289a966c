"""The hot path of the distributed profile: accepted messages stored by one statement per batch.

Every write of `MessageIntake.accept` goes into one data-modifying statement, run in autocommit
mode: no BEGIN, no pre-ping, no SQLAlchemy statement compilation (see `chat4all.adapters.sql.postgres`).
Requests that arrive while up to `max_in_flight` statements run share the next one (see
`chat4all.adapters.sql.group_commit`): under load the round trip, the commit and the waking of a
PostgreSQL backend are paid once per batch.

Besides the message's own rows it writes what `application.reading.store_new_message` writes:
its position (the conversation's count + its rank in the batch), the conversation's count, last
message and activity, a receipt and +1 unread for each recipient, and `message.created` in every
member's event log, numbered from their counter rows; and `pg_notify` wakes the members' readers
in every API process once it commits (`adapters.sql.event_log`).

Locks follow the order of `application.ports.read_state`: the conversations' rows first, in id
order, before anything is written (every write depends on `fresh`, whose numbering needs all of
them); then the horizons, in (conversation, user) order; then the users' counters, in user
order, which wait for the horizons through `(SELECT count(*) FROM unread)`. So two batches, or a
batch and a member marking a conversation read, wait for one another instead of deadlocking, a
conversation's messages get their positions and outbox ids in the order they commit, and each
user's events get their seqs in that order too. Each event's seq is its user's new counter minus
the user's events in the batch plus its rank among them; the counters are looked up in one JSON
object (`last_seq`) rather than joined: the planner, which expects one row from each CTE, would
join them by a nested loop (a batch of 100 messages to 10 members: 1,000 x 50 comparisons).

A message id is new when no committed row has it as the statement starts (`fresh`): positions
are given to new messages only, so they have no gap. An id stored by a transaction that commits
while the statement runs fails it with a unique violation; it is then run again, and sees the id.
A connection that broke before or during the statement (the server restarted, say) is replaced
and the statement sent once more: it stores only the ids that are new, so running it twice never
stores anything twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from chat4all.adapters.sql.event_log import EVENTS_CHANNEL, IDS_PER_NOTIFICATION
from chat4all.adapters.sql.group_commit import GroupCommitIntake, PendingAccept
from chat4all.adapters.sql.postgres.connections import translate_psycopg_errors
from chat4all.adapters.sql.postgres.log_append import append_to_logs
from chat4all.adapters.sql.postgres.parameters import history_json_rows
from chat4all.domain.event_data import message_data, payload_data
from chat4all.domain.messages import FilePayload

log = logging.getLogger(__name__)

ACCEPT_MANY = """
WITH input AS (
    SELECT * FROM json_to_recordset(%(messages)s::json) AS input(
        id uuid, conversation_id uuid, sender_id uuid, recipient_id uuid, channels json, payload json, priority text,
        status text, fingerprint text, created_at timestamptz, file_id uuid, topic text, key text, routing json,
        created json, position bigint, failover json, origin text)
), conversation AS (
    SELECT id, message_count FROM conversations WHERE id IN (SELECT conversation_id FROM input) ORDER BY id FOR UPDATE
), fresh AS (
    SELECT input.*, conversation.message_count
           + row_number() OVER (PARTITION BY input.conversation_id ORDER BY input.position) AS number
    FROM input JOIN conversation ON conversation.id = input.conversation_id
    WHERE NOT EXISTS (SELECT FROM messages WHERE messages.id = input.id)
), new_message AS (
    INSERT INTO messages (id, conversation_id, sender_id, recipient_id, channels, payload, priority, status,
                          fingerprint, created_at, position, failover, origin)
    SELECT id, conversation_id, sender_id, recipient_id, channels, payload, priority, status, fingerprint, created_at,
           number, failover, origin
    FROM fresh ORDER BY position
    RETURNING id
), deliveries AS (
    INSERT INTO message_deliveries (message_id, channel, status, updated_at)
    SELECT delivery.message_id, delivery.channel, delivery.status, delivery.updated_at
    FROM json_to_recordset(%(deliveries)s::json)
         AS delivery(message_id uuid, channel text, status text, updated_at timestamptz)
    JOIN fresh ON fresh.id = delivery.message_id
), events AS (
    INSERT INTO message_events (message_id, status, channel, at, detail)
    SELECT event.message_id, event.status, event.channel, event.at, event.detail
    FROM json_to_recordset(%(events)s::json)
         AS event(message_id uuid, status text, channel text, at timestamptz, detail text, position bigint)
    JOIN fresh ON fresh.id = event.message_id
    ORDER BY event.position
), counted AS (
    UPDATE conversations SET message_count = latest.count, last_message_id = latest.last_message_id,
                             last_activity_at = greatest(conversations.last_activity_at, latest.at)
    FROM (SELECT conversation_id, max(number) AS count, (array_agg(id ORDER BY number DESC))[1] AS last_message_id,
                 max(created_at) AS at
          FROM fresh GROUP BY conversation_id) AS latest
    WHERE conversations.id = latest.conversation_id
), share AS (
    INSERT INTO file_shares (file_id, conversation_id)
    SELECT DISTINCT file_id, conversation_id FROM fresh WHERE file_id IS NOT NULL
    ON CONFLICT DO NOTHING
), routing AS (
    INSERT INTO outbox (topic, key, payload, created_at)
    SELECT topic, key, routing, created_at FROM fresh ORDER BY position
), audience AS (
    SELECT fresh.id AS message_id, fresh.conversation_id, fresh.number, fresh.position, fresh.created_at, fresh.created,
           member.user_id, member.recipient
    FROM json_to_recordset(%(audience)s::json) AS member(message_id uuid, user_id uuid, recipient boolean)
    JOIN fresh ON fresh.id = member.message_id
), receipts AS (
    INSERT INTO message_receipts (message_id, recipient_id, conversation_id, position)
    SELECT message_id, user_id, conversation_id, number FROM audience WHERE recipient
), unread AS (
    INSERT INTO conversation_reads AS horizon (conversation_id, user_id, unread_count)
    SELECT conversation_id, user_id, count(*) FROM audience WHERE recipient
    GROUP BY conversation_id, user_id ORDER BY conversation_id, user_id
    ON CONFLICT (conversation_id, user_id) DO UPDATE SET unread_count = horizon.unread_count + excluded.unread_count
    RETURNING 1
""" + append_to_logs("audience", "unread", "'message.created'", "audience.created_at", "audience.created") + """SELECT id FROM new_message WHERE (SELECT count(*) FROM woken) >= 0
"""


def accept_many_parameters(batch: Sequence[PendingAccept]) -> dict[str, object]:
    """The statement's parameters: JSON documents (messages, delivery rows, history entries, and
    who hears of each message), in the batch's order. One JSON text is many times cheaper for
    psycopg to send than an array per column, which it dumps element by element in Python."""
    rows: list[dict[str, object]] = []
    deliveries: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    audience: list[dict[str, object]] = []
    for item in batch:
        message, conversation = item.message, item.conversation
        message_id = str(message.id)
        rows.append(_message_json(item, position=len(rows)))
        deliveries += [
            {"message_id": message_id, "channel": channel, "status": status.value, "updated_at": rows[-1]["created_at"]}
            for channel, status in message.deliveries.items()
        ]
        events += history_json_rows(message, len(events))
        recipients = set(conversation.recipients_of(message.sender_id, message.recipient_id))
        audience += [
            {"message_id": message_id, "user_id": str(member), "recipient": member in recipients}
            for member in conversation.members
        ]
    return {
        "messages": json.dumps(rows),
        "deliveries": json.dumps(deliveries),
        "events": json.dumps(events),
        "audience": json.dumps(audience),
        "channel": EVENTS_CHANNEL,
        "ids_per_notification": IDS_PER_NOTIFICATION,
    }


def _message_json(item: PendingAccept, *, position: int) -> dict[str, object]:
    message = item.message
    return {
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "sender_id": str(message.sender_id),
        "recipient_id": None if message.recipient_id is None else str(message.recipient_id),
        "channels": list(message.channels),
        "payload": payload_data(message.payload),
        "priority": message.priority.value,
        "status": message.status.value,
        "fingerprint": message.fingerprint,
        "created_at": message.created_at.isoformat(),
        "file_id": str(message.payload.file_id) if isinstance(message.payload, FilePayload) else None,
        "topic": item.routing.topic,
        "key": item.routing.key,
        "routing": dict(item.routing.payload),
        "created": message_data(message),
        "position": position,
        "failover": list(message.failover) or None,
        "origin": message.origin,
    }


class PostgresMessageIntake(GroupCommitIntake):
    """Implements `MessageIntake` on PostgreSQL (see the module docstring)."""

    def __init__(self, pool: AsyncConnectionPool, *, max_in_flight: int = 4, max_batch: int = 100) -> None:
        super().__init__(max_in_flight=max_in_flight, max_batch=max_batch)
        self._pool = pool

    async def store_batch(self, batch: list[PendingAccept]) -> set[UUID]:
        parameters = accept_many_parameters(batch)
        with translate_psycopg_errors():
            try:
                return await self._run_until_settled(parameters, len(batch))
            except psycopg.OperationalError as error:
                log.info("message intake connection lost (%s); retrying once on a new connection", error)
                return await self._run_until_settled(parameters, len(batch))

    async def _run_until_settled(self, parameters: dict[str, object], size: int) -> set[UUID]:
        """Runs the statement again after an id stored meanwhile failed it: each run that fails so
        has met one more stored id, which the next run sees (at most one run per message)."""
        for _ in range(size):
            try:
                return await self._run(parameters)
            except psycopg.errors.UniqueViolation as error:
                if error.diag.constraint_name != "pk_messages":
                    raise
                log.info("a message id of the batch was stored meanwhile; storing the batch again")
        return await self._run(parameters)

    async def _run(self, parameters: dict[str, object]) -> set[UUID]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(ACCEPT_MANY, parameters)
            return {row[0] for row in await cursor.fetchall()}
