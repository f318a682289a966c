"""The worker's message batches on psycopg directly: a read in one statement, a change in two
round trips.

Through SQLAlchemy a batch of routing or delivery outcomes took some 17 statements (BEGIN, the
locking read, a second read for messages without deliveries, an UPDATE per status, one upsert
and one INSERT per row, COMMIT), each compiled and sent on its own. Here (see `chat4all.adapters.sql.postgres`):

- `read` is one SELECT in autocommit mode: no BEGIN, no ROLLBACK.
- `change` sends BEGIN, the lock and the read in one pipelined round trip, calls `apply`, then
  sends every write in one set-based statement together with COMMIT in a second round trip:
  the messages' rows and, for delivery outcomes, the receipts delivered and the senders'
  `message.status` events with their wake-up.

The lock and the read are two statements on purpose: in READ COMMITTED each statement sees what
was committed before it began, so the read after the lock sees the deliveries written by the
transaction it waited for (a locking statement with an outer join to the deliveries would hand
back the versions from before the wait). Only message rows are locked: every writer of a
message's deliveries holds the lock on the message row.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool

from chat4all.adapters.sql.event_log import EVENTS_CHANNEL, IDS_PER_NOTIFICATION
from chat4all.adapters.sql.message_rows import message_from_row
from chat4all.adapters.sql.postgres.connections import (
    checking_pool_on_failure,
    pipelined_transaction,
    translate_psycopg_errors,
)
from chat4all.adapters.sql.postgres.log_append import append_to_logs
from chat4all.adapters.sql.postgres.parameters import history_json_rows, uuid_array
from chat4all.application.ports import BatchWrite
from chat4all.domain.failover import DeliveryAttempt
from chat4all.domain.messages import DeliveryStatus, Message

READ = """
SELECT m.id, m.conversation_id, m.sender_id, m.recipient_id, m.channels, m.payload, m.priority, m.status,
       m.fingerprint, m.created_at, m.read_by_all_at, m.failover, m.origin, d.channel AS delivery_channel,
       d.status AS delivery_status
FROM messages AS m LEFT JOIN message_deliveries AS d ON d.message_id = m.id
WHERE m.id = ANY(%(ids)s::uuid[])
"""

# In id order, so two batches that overlap wait for one another instead of deadlocking.
LOCK = "SELECT id FROM messages WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR UPDATE"

# Everything `MessageRepository.update_many` writes, in one statement: the new statuses, the
# deliveries with a new outcome (only when it differs, as the SQLAlchemy upsert does) and the
# new history events, inserted in the order given since history is read back by event id.
WRITE_MESSAGES = """
WITH statuses AS (
    UPDATE messages SET status = changed.status
    FROM json_to_recordset(%(statuses)s::json) AS changed(id uuid, status text)
    WHERE messages.id = changed.id
), deliveries AS (
    INSERT INTO message_deliveries AS delivery (message_id, channel, status, updated_at)
    SELECT * FROM json_to_recordset(%(deliveries)s::json)
                  AS changed(message_id uuid, channel text, status text, updated_at timestamptz)
    ON CONFLICT (message_id, channel) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at
    WHERE delivery.status <> excluded.status
), history AS (
    INSERT INTO message_events (message_id, status, channel, at, detail)
    SELECT event.message_id, event.status, event.channel, event.at, event.detail
    FROM json_to_recordset(%(events)s::json)
         AS event(message_id uuid, status text, channel text, at timestamptz, detail text, position bigint)
    ORDER BY event.position
)"""

WRITE = WRITE_MESSAGES + "\nSELECT 1"

# The same, with what delivery outcomes also write (`BatchWrite`): the receipts delivered, then
# the users' events, numbered from their counter rows as `postgres/intake.py` numbers them, and
# `pg_notify` to wake their readers once it commits (`adapters.sql.event_log`). Locks follow
# `application.ports.read_state`: the messages are locked already; the receipts, then the
# counters in user order, which wait for the receipts through `(SELECT count(*) FROM receipts)`.
WRITE_WITH_EVENTS = WRITE_MESSAGES + """, receipts AS (
    UPDATE message_receipts AS receipt SET delivered_at = delivered.at
    FROM json_to_recordset(%(receipts)s::json) AS delivered(message_id uuid, recipient_id uuid, at timestamptz)
    WHERE receipt.message_id = delivered.message_id AND receipt.recipient_id = delivered.recipient_id
      AND receipt.delivered_at IS NULL
    RETURNING 1
), attempts AS (
    INSERT INTO delivery_attempts (message_id, recipient_id, channel, delivered, at, error)
    SELECT message_id, recipient_id, channel, delivered, at, error
    FROM json_to_recordset(%(attempts)s::json) AS attempt(
        message_id uuid, recipient_id uuid, channel text, delivered boolean, at timestamptz, error text, position bigint)
    ORDER BY position
), told AS (
    SELECT * FROM json_to_recordset(%(user_events)s::json)
                  AS told(user_id uuid, type text, at timestamptz, data json, position bigint)
""" + append_to_logs("told", "receipts", "told.type", "told.at", "told.data") + """SELECT count(*) FROM woken
"""


def messages_of(rows: Iterable[Any]) -> dict[UUID, Message]:
    """Messages from `READ` rows: one row per delivery, or one row with no delivery."""
    first: dict[UUID, Any] = {}
    deliveries: dict[UUID, dict[str, DeliveryStatus]] = defaultdict(dict)
    for row in rows:
        first.setdefault(row.id, row)
        if row.delivery_channel is not None:
            deliveries[row.id][row.delivery_channel] = DeliveryStatus(row.delivery_status)
    return {message_id: message_from_row(row, deliveries[message_id], []) for message_id, row in first.items()}


def write_parameters(changed: Sequence[Message]) -> dict[str, Any]:
    """The JSON documents of `WRITE` for messages with `new_events`, chosen as `update_many` chooses
    (JSON, because psycopg dumps arrays element by element in Python: several times slower)."""
    statuses: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for message in changed:
        message_id = str(message.id)
        if any(event.channel is None for event in message.new_events):  # a status change has no channel
            statuses.append({"id": message_id, "status": message.status.value})
        changed_at = {event.channel: event.at for event in message.new_events if event.channel is not None}
        deliveries += [
            {"message_id": message_id, "channel": channel, "status": message.deliveries[channel].value, "updated_at": at.isoformat()}
            for channel, at in changed_at.items()
            if channel in message.deliveries
        ]
        events += history_json_rows(message, len(events))
    return {"statuses": json.dumps(statuses), "deliveries": json.dumps(deliveries), "events": json.dumps(events)}


def write_statement(write: BatchWrite, changed: Sequence[Message]) -> tuple[str, dict[str, Any]]:
    """The statement that writes `write` (its messages as `changed`) and its parameters: the
    shorter one when there are no receipts or events (routing)."""
    parameters = write_parameters(changed)
    if not write.delivered_receipts and not write.events and not write.attempts:
        return WRITE, parameters
    at = None if write.at is None else write.at.isoformat()
    receipts = [{"message_id": str(m), "recipient_id": str(r), "at": at} for m, r in write.delivered_receipts]
    told = [
        {"user_id": str(event.user_id), "type": event.type.value, "at": event.at.isoformat(), "data": dict(event.data), "position": n}
        for n, event in enumerate(write.events)
    ]
    parameters |= {
        "receipts": json.dumps(receipts),
        "user_events": json.dumps(told),
        "attempts": json.dumps([_attempt_json(attempt, n) for n, attempt in enumerate(write.attempts)]),
        "channel": EVENTS_CHANNEL,
        "ids_per_notification": IDS_PER_NOTIFICATION,
    }
    return WRITE_WITH_EVENTS, parameters


def _attempt_json(attempt: DeliveryAttempt, position: int) -> dict[str, Any]:
    return {
        "message_id": str(attempt.message_id),
        "recipient_id": str(attempt.recipient_id),
        "channel": attempt.channel,
        "delivered": attempt.delivered,
        "at": attempt.at.isoformat(),
        "error": attempt.error,
        "position": position,
    }


class PostgresMessageBatches:
    """Implements `MessageBatches` on PostgreSQL (see the module docstring)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def read(self, message_ids: Sequence[UUID]) -> dict[UUID, Message]:
        if not message_ids:
            return {}
        with translate_psycopg_errors():
            async with (
                checking_pool_on_failure(self._pool),
                self._pool.connection() as connection,
                connection.cursor(row_factory=namedtuple_row) as cursor,
            ):
                await cursor.execute(READ, {"ids": uuid_array(set(message_ids))})
                return messages_of(await cursor.fetchall())

    async def change(
        self, message_ids: Sequence[UUID], apply: Callable[[dict[UUID, Message]], BatchWrite]
    ) -> dict[UUID, Message]:
        if not message_ids:
            return {}
        ids = {"ids": uuid_array(sorted(set(message_ids)))}
        with translate_psycopg_errors():
            async with (
                pipelined_transaction(self._pool) as connection,
                connection.cursor(row_factory=namedtuple_row) as cursor,
            ):
                await connection.execute(LOCK, ids)
                await cursor.execute(READ, ids)
                found = messages_of(await cursor.fetchall())  # the first round trip: BEGIN, lock, read
                write = apply(found)
                # Each message once (by id, first place kept): a delivery row may change once per statement.
                changed = list({message.id: message for message in write.messages if message.new_events}.values())
                if changed or write.delivered_receipts or write.events or write.attempts:
                    await cursor.execute(*write_statement(write, changed))
            # The second round trip, on leaving the transaction: the write and COMMIT.
        for message in changed:
            message.new_events.clear()
        return found
