"""The embedded profile's message intake: accepted messages stored a batch per transaction.

SQLite has one writer and the embedded engine one connection, each statement a hop to aiosqlite's
thread. Storing a message through the unit of work costs a dozen of them (BEGIN, the counter,
inserts, upserts, COMMIT); here a batch of messages costs about as many in all, each statement
writing every row of its table at once (`chat4all.adapters.sql.group_commit` forms the batches:
one in flight at a time, since there is only the one connection).

What it writes is what `application.reading.store_new_message` writes through the unit of work:
positions after each conversation's counter, receipts and unread counts for the recipients, the
conversations' counters, last message and activity, and `message.created` for every member
(`adapters.sql.event_log`, on the same connection). Writes are serialized (BEGIN IMMEDIATE), so
the counters read at the start of the batch stay the truth until it commits.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, case, func, insert, literal_column, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import translate_errors
from chat4all.adapters.sql.event_log import SqlUserEventLog
from chat4all.adapters.sql.group_commit import GroupCommitIntake, PendingAccept
from chat4all.adapters.sql.message_rows import history_rows, message_row
from chat4all.adapters.sql.tables import (
    UtcDateTime,
    conversation_reads,
    conversations,
    file_shares,
    message_deliveries,
    message_events,
    message_receipts,
    messages,
    outbox,
)
from chat4all.domain.event_data import message_created
from chat4all.domain.messages import FilePayload

_AT = bindparam("at", type_=UtcDateTime())
_COUNT = (
    update(conversations)
    .where(conversations.c.id == bindparam("conversation_id"))
    .values(
        message_count=bindparam("count"),
        last_message_id=bindparam("last_message_id"),
        last_activity_at=case((conversations.c.last_activity_at < _AT, _AT), else_=conversations.c.last_activity_at),
    )
)

# New messages always lie beyond a horizon (it only points at messages that exist): each adds one.
_UNREAD = sqlite.insert(conversation_reads)
_UNREAD = _UNREAD.on_conflict_do_update(
    index_elements=[conversation_reads.c.conversation_id, conversation_reads.c.user_id],
    set_={"unread_count": conversation_reads.c.unread_count + _UNREAD.excluded.unread_count},
)


class SqliteMessageIntake(GroupCommitIntake):
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 100) -> None:
        super().__init__(max_in_flight=1, max_batch=max_batch)
        self._engine = engine

    async def store_batch(self, batch: list[PendingAccept]) -> set[UUID]:
        async with exclusive_use(self._engine):
            with translate_errors():
                async with self._engine.begin() as connection:  # BEGIN IMMEDIATE: no other writer until COMMIT
                    wanted = [item.message.id for item in batch]
                    existing = set((await connection.execute(select(messages.c.id).where(messages.c.id.in_(wanted)))).scalars())
                    new = [item for item in batch if item.message.id not in existing]
                    if not new:
                        return set()
                    await _store(connection, new)
        return {item.message.id for item in new}


async def _store(connection: AsyncConnection, batch: list[PendingAccept]) -> None:
    # Rows get the next rowids in insertion order; `seq` follows them (see SqlMessageRepository.add).
    last_seq = (
        await connection.execute(select(func.coalesce(func.max(literal_column("rowid")), 0)).select_from(messages))
    ).scalar_one()
    wanted = {item.conversation.id for item in batch}
    counts = dict((await connection.execute(select(conversations.c.id, conversations.c.message_count).where(conversations.c.id.in_(wanted)))).all())
    for table, rows in _rows(batch, first_seq=last_seq + 1, counts=counts):
        if rows:
            await connection.execute(table, rows)
    await SqlUserEventLog(connection).append([event for item in batch for event in message_created(item.message, item.conversation)])


def _rows(batch: list[PendingAccept], *, first_seq: int, counts: dict[UUID, int]) -> list[tuple[Any, list[dict[str, Any]]]]:
    stored, deliveries, events, receipts, shares, routing = [], [], [], [], [], []
    latest: dict[UUID, dict[str, Any]] = {}  # per conversation: its counter, last message and activity
    unread: Counter[tuple[UUID, UUID]] = Counter()
    for seq, item in enumerate(batch, start=first_seq):
        message, conversation = item.message, item.conversation
        position = counts[conversation.id] = counts.get(conversation.id, 0) + 1
        stored.append({**message_row(message), "seq": seq, "position": position})
        deliveries += [
            {"message_id": message.id, "channel": channel, "status": status.value, "updated_at": message.created_at}
            for channel, status in message.deliveries.items()
        ]
        events += history_rows(message)
        for recipient in conversation.recipients_of(message.sender_id, message.recipient_id):
            receipts.append({"message_id": message.id, "recipient_id": recipient, "conversation_id": conversation.id, "position": position})
            unread[conversation.id, recipient] += 1
        at = max(latest[conversation.id]["at"], message.created_at) if conversation.id in latest else message.created_at
        latest[conversation.id] = {"conversation_id": conversation.id, "count": position, "last_message_id": message.id, "at": at}
        if isinstance(message.payload, FilePayload):
            shares.append({"file_id": message.payload.file_id, "conversation_id": conversation.id})
        routing.append({"topic": item.routing.topic, "key": item.routing.key, "payload": dict(item.routing.payload)})
    return [
        (insert(messages), stored),
        (insert(message_deliveries), deliveries),
        (insert(message_events), events),
        (insert(message_receipts), receipts),
        (_UNREAD, [{"conversation_id": pair[0], "user_id": pair[1], "unread_count": n} for pair, n in sorted(unread.items())]),
        (_COUNT, list(latest.values())),
        (sqlite.insert(file_shares).on_conflict_do_nothing(), shares),
        (insert(outbox), routing),
    ]
