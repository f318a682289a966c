"""The embedded profile's message intake: accepted messages stored a batch per transaction.

SQLite has one writer and the embedded engine one connection, each statement a hop to aiosqlite's
thread. Storing a message through the unit of work costs seven of them (BEGIN, four inserts, an
update, COMMIT); here a batch of messages costs about as many in all, each statement writing
every row of its table at once (`chat4all.adapters.sql.group_commit` forms the batches: one in
flight at a time, since there is only the one connection).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, insert, literal_column, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import translate_errors
from chat4all.adapters.sql.group_commit import GroupCommitIntake, PendingAccept
from chat4all.adapters.sql.message_rows import history_rows, message_row
from chat4all.adapters.sql.tables import (
    conversations,
    file_shares,
    message_deliveries,
    message_events,
    messages,
    outbox,
)
from chat4all.domain.messages import FilePayload

_TOUCH = (
    update(conversations)
    .where(conversations.c.id == bindparam("conversation_id"), conversations.c.last_activity_at < bindparam("at"))
    .values(last_activity_at=bindparam("at"))
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
                    # Rows get the next rowids in insertion order; `seq` follows them (see SqlMessageRepository.add).
                    last = (
                        await connection.execute(select(func.coalesce(func.max(literal_column("rowid")), 0)).select_from(messages))
                    ).scalar_one()
                    for table, rows in _rows(new, first_seq=last + 1):
                        if rows:
                            await connection.execute(table, rows)
        return {item.message.id for item in new}


def _rows(batch: list[PendingAccept], *, first_seq: int) -> list[tuple[Any, list[dict[str, Any]]]]:
    stored, deliveries, events, shares, routing = [], [], [], [], []
    latest: dict[UUID, datetime] = {}  # per conversation: its newest message's time
    for seq, item in enumerate(batch, start=first_seq):
        message = item.message
        stored.append({**message_row(message), "seq": seq})
        deliveries += [
            {"message_id": message.id, "channel": channel, "status": status.value, "updated_at": message.created_at}
            for channel, status in message.deliveries.items()
        ]
        events += history_rows(message)
        latest[message.conversation_id] = max(latest.get(message.conversation_id, message.created_at), message.created_at)
        if item.file_shared_with is not None and isinstance(message.payload, FilePayload):
            shares.append({"file_id": message.payload.file_id, "conversation_id": item.file_shared_with})
        routing.append({"topic": item.routing.topic, "key": item.routing.key, "payload": dict(item.routing.payload)})
    return [
        (insert(messages), stored),
        (insert(message_deliveries), deliveries),
        (insert(message_events), events),
        (_TOUCH, [{"conversation_id": conversation_id, "at": at} for conversation_id, at in latest.items()]),
        (sqlite.insert(file_shares).on_conflict_do_nothing(), shares),
        (insert(outbox), routing),
    ]
