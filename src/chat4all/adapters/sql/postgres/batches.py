"""The worker's message batches on psycopg directly: a read in one statement, a change in two
round trips.

Through SQLAlchemy a batch of routing or delivery outcomes took some 17 statements (BEGIN, the
locking read, a second read for messages without deliveries, an UPDATE per status, one upsert
and one INSERT per row, COMMIT), each compiled and sent on its own. Here (see `chat4all.adapters.sql.postgres`):

- `read` is one SELECT in autocommit mode: no BEGIN, no ROLLBACK.
- `change` sends BEGIN, the lock and the read in one pipelined round trip, calls `apply`, then
  sends every write in one set-based statement together with COMMIT in a second round trip.

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

from chat4all.adapters.sql.message_rows import message_from_row
from chat4all.adapters.sql.postgres.connections import (
    checking_pool_on_failure,
    pipelined_transaction,
    translate_psycopg_errors,
)
from chat4all.adapters.sql.postgres.parameters import history_json_rows, uuid_array
from chat4all.domain.messages import DeliveryStatus, Message

READ = """
SELECT m.id, m.conversation_id, m.sender_id, m.recipient_id, m.channels, m.payload, m.priority, m.status,
       m.fingerprint, m.created_at, m.read_by_all_at, m.origin, d.channel AS delivery_channel,
       d.status AS delivery_status
FROM messages AS m LEFT JOIN message_deliveries AS d ON d.message_id = m.id
WHERE m.id = ANY(%(ids)s::uuid[])
"""

# In id order, so two batches that overlap wait for one another instead of deadlocking.
LOCK = "SELECT id FROM messages WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR UPDATE"

# Everything `MessageRepository.update_many` writes, in one statement: the new statuses, the
# deliveries with a new outcome (only when it differs, as the SQLAlchemy upsert does) and the
# new history events, inserted in the order given since history is read back by event id.
WRITE = """
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
)
INSERT INTO message_events (message_id, status, channel, at, detail)
SELECT event.message_id, event.status, event.channel, event.at, event.detail
FROM json_to_recordset(%(events)s::json)
     AS event(message_id uuid, status text, channel text, at timestamptz, detail text, position bigint)
ORDER BY event.position
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


def write_parameters(changed: Sequence[Message]) -> dict[str, str]:
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
        self, message_ids: Sequence[UUID], apply: Callable[[dict[UUID, Message]], Sequence[Message]]
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
                # Each message once (by id, first place kept): a delivery row may change once per statement.
                changed = list({message.id: message for message in apply(found) if message.new_events}.values())
                if changed:
                    await cursor.execute(WRITE, write_parameters(changed))
            # The second round trip, on leaving the transaction: the write and COMMIT.
        for message in changed:
            message.new_events.clear()
        return found
