"""The hot path of the distributed profile: accepted messages stored by one statement per batch.

Every write of `MessageIntake.accept` goes into one data-modifying statement, run in autocommit
mode: no BEGIN, no pre-ping, no SQLAlchemy statement compilation (see `postgres_direct`). And
requests that arrive while earlier statements are in flight share the next statement: with up to
`max_in_flight` statements running, the rest wait in a queue and go together, up to `max_batch`
messages in one statement (group commit). At low load a message still goes alone, at once; under
load the round trip, the commit and the waking of a PostgreSQL backend are paid once per batch.

The conversations' rows are locked, in id order, before anything is inserted (every insert
depends on those locks, and the rows are sorted before the first insert), so two batches that
share conversations wait for one another instead of deadlocking, and a conversation's messages
get their outbox ids in the order they commit: the relay publishes them in that order. Within a
batch, messages keep the order their requests arrived in.

A connection that broke before or during the statement (the server restarted, say) is replaced
and the statement sent once more: it inserts only the ids that are new, so running it twice never
stores anything twice. Any other failure of a batch (a value PostgreSQL cannot store, say) sends
its messages again one by one, so only the faulty request fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from uuid import UUID

import attrs
import psycopg
from psycopg_pool import AsyncConnectionPool

from chat4all.adapters.sql.messages import payload_to_json
from chat4all.adapters.sql.postgres_direct import translate_psycopg_errors
from chat4all.application.ports import OutboxEvent
from chat4all.domain.messages import FilePayload, Message

log = logging.getLogger(__name__)

ACCEPT_MANY = """
WITH input AS (
    SELECT * FROM unnest(
        %(ids)s::uuid[], %(conversation_ids)s::uuid[], %(sender_ids)s::uuid[], %(recipient_ids)s::uuid[],
        %(channels)s::text[], %(payloads)s::text[], %(priorities)s::text[], %(statuses)s::text[],
        %(fingerprints)s::text[], %(created_at)s::timestamptz[], %(file_ids)s::uuid[], %(shared_with)s::uuid[],
        %(topics)s::text[], %(keys)s::text[], %(routings)s::text[]
    ) WITH ORDINALITY AS input(id, conversation_id, sender_id, recipient_id, channels, payload, priority, status,
                               fingerprint, created_at, file_id, shared_with, topic, key, routing, position)
), conversation AS (
    SELECT id FROM conversations WHERE id IN (SELECT conversation_id FROM input) ORDER BY id FOR UPDATE
), new_message AS (
    INSERT INTO messages (id, conversation_id, sender_id, recipient_id, channels, payload, priority, status,
                          fingerprint, created_at)
    SELECT input.id, input.conversation_id, input.sender_id, input.recipient_id, input.channels::json,
           input.payload::json, input.priority, input.status, input.fingerprint, input.created_at
    FROM input JOIN conversation ON conversation.id = input.conversation_id
    ORDER BY input.position
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), deliveries AS (
    INSERT INTO message_deliveries (message_id, channel, status, updated_at)
    SELECT delivery.message_id, delivery.channel, delivery.status, delivery.updated_at
    FROM unnest(%(delivery_message_ids)s::uuid[], %(delivery_channels)s::text[], %(delivery_statuses)s::text[],
                %(delivery_times)s::timestamptz[]) AS delivery(message_id, channel, status, updated_at)
    JOIN new_message ON new_message.id = delivery.message_id
), events AS (
    INSERT INTO message_events (message_id, status, channel, at, detail)
    SELECT event.message_id, event.status, event.channel, event.at, event.detail
    FROM unnest(%(event_message_ids)s::uuid[], %(event_statuses)s::text[], %(event_channels)s::text[],
                %(event_times)s::timestamptz[], %(event_details)s::text[])
         WITH ORDINALITY AS event(message_id, status, channel, at, detail, position)
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
    SELECT input.topic, input.key, input.routing::json, input.created_at
    FROM input JOIN new_message ON new_message.id = input.id
    ORDER BY input.position
)
SELECT id FROM new_message
"""


@attrs.define
class _Accept:
    """One request's message, waiting for the statement that stores it."""

    message: Message
    routing: OutboxEvent
    file_shared_with: UUID | None
    outcome: asyncio.Future[bool]


def accept_many_parameters(batch: Sequence[_Accept]) -> dict[str, list[object]]:
    """The statement's parameters: one array per column, in the batch's order."""
    columns: dict[str, list[object]] = {
        name: []
        for name in (
            "ids conversation_ids sender_ids recipient_ids channels payloads priorities statuses fingerprints "
            "created_at file_ids shared_with topics keys routings delivery_message_ids delivery_channels "
            "delivery_statuses delivery_times event_message_ids event_statuses event_channels event_times "
            "event_details"
        ).split()
    }
    for item in batch:
        message = item.message
        shares = isinstance(message.payload, FilePayload) and item.file_shared_with is not None
        for name, value in (
            ("ids", message.id),
            ("conversation_ids", message.conversation_id),
            ("sender_ids", message.sender_id),
            ("recipient_ids", message.recipient_id),
            ("channels", json.dumps(list(message.channels))),
            ("payloads", json.dumps(payload_to_json(message.payload))),
            ("priorities", message.priority.value),
            ("statuses", message.status.value),
            ("fingerprints", message.fingerprint),
            ("created_at", message.created_at),
            ("file_ids", message.payload.file_id if shares else None),  # type: ignore[union-attr]
            ("shared_with", item.file_shared_with if shares else None),
            ("topics", item.routing.topic),
            ("keys", item.routing.key),
            ("routings", json.dumps(dict(item.routing.payload))),
        ):
            columns[name].append(value)
        for channel, status in message.deliveries.items():
            columns["delivery_message_ids"].append(message.id)
            columns["delivery_channels"].append(channel)
            columns["delivery_statuses"].append(status.value)
            columns["delivery_times"].append(message.created_at)
        for event in message.new_events:
            columns["event_message_ids"].append(message.id)
            columns["event_statuses"].append(event.status)
            columns["event_channels"].append(event.channel)
            columns["event_times"].append(event.at)
            columns["event_details"].append(event.detail)
    return columns


class PostgresMessageIntake:
    """Implements `MessageIntake` on PostgreSQL (see the module docstring)."""

    def __init__(self, pool: AsyncConnectionPool, *, max_in_flight: int = 4, max_batch: int = 100) -> None:
        self._pool = pool
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._waiting: list[_Accept] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def accept(self, message: Message, routing: OutboxEvent, file_shared_with: UUID | None = None) -> bool:
        item = _Accept(message, routing, file_shared_with, asyncio.get_running_loop().create_future())
        self._waiting.append(item)
        self._send_waiting()
        with translate_psycopg_errors():
            inserted = await item.outcome
        message.new_events.clear()
        return inserted

    def _send_waiting(self) -> None:
        while self._waiting and len(self._in_flight) < self._max_in_flight:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            task = asyncio.create_task(self._store(batch), name="message-intake")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._send_waiting()

    async def _store(self, batch: list[_Accept]) -> None:
        """Settles every request of the batch: stored (True), not new (False) or its own error."""
        first_of_id: dict[UUID, _Accept] = {}
        for item in batch:
            first_of_id.setdefault(item.message.id, item)
        unique = list(first_of_id.values())
        try:
            try:
                inserted = await self._insert(unique)
                outcomes: list[bool | BaseException] = [item.message.id in inserted for item in unique]
            except psycopg.Error as error:
                if len(unique) == 1:
                    raise
                log.info("a batch of %d messages failed (%s); storing them one by one", len(unique), type(error).__name__)
                outcomes = [await self._insert_alone(item) for item in unique]
        except BaseException as error:  # the database is away, or this task is cancelled: every request learns it
            for item in batch:
                _settle(item, error)
            if not isinstance(error, Exception):
                raise
            return
        for item, outcome in zip(unique, outcomes, strict=True):
            _settle(item, outcome)
        for item in batch:  # later requests with an id already in this batch are not new
            _settle(item, False)

    async def _insert_alone(self, item: _Accept) -> bool | BaseException:
        try:
            return item.message.id in await self._insert([item])
        except psycopg.Error as error:
            return error

    async def _insert(self, unique: list[_Accept]) -> set[UUID]:
        """The ids the statement stored."""
        parameters = accept_many_parameters(unique)
        try:
            return await self._run(parameters)
        except psycopg.OperationalError as error:
            log.info("message intake connection lost (%s); retrying once on a new connection", error)
            return await self._run(parameters)

    async def _run(self, parameters: dict[str, list[object]]) -> set[UUID]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(ACCEPT_MANY, parameters)
            return {row[0] for row in await cursor.fetchall()}


def _settle(item: _Accept, outcome: bool | BaseException) -> None:
    if item.outcome.done():  # answered already, or the request was cancelled
        return
    if isinstance(outcome, asyncio.CancelledError):
        item.outcome.cancel()
    elif isinstance(outcome, BaseException):
        item.outcome.set_exception(outcome)
    else:
        item.outcome.set_result(outcome)
