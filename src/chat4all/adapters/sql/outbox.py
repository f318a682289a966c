"""The transactional outbox: events are inserted with the state change that caused them,
then relayed to the event bus and deleted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.base import SqlRepository
from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import close_quietly, translate_errors
from chat4all.adapters.sql.tables import outbox
from chat4all.application.ports import EventPublisher, OutboxEvent


class SqlOutbox(SqlRepository):
    async def add(self, topic: str, key: str, payload: Mapping[str, Any]) -> None:
        await self._execute(insert(outbox).values(topic=topic, key=key, payload=dict(payload)))


class SqlOutboxReader:
    """Relays pending outbox rows, oldest first. Several relays may run at once on PostgreSQL:
    each claims rows with `FOR UPDATE SKIP LOCKED`, so every row is published by one of them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def relay_batch(self, publisher: EventPublisher, limit: int) -> int:
        async with exclusive_use(self._engine):
            with translate_errors():
                connection = await self._engine.connect()
            try:
                with translate_errors():
                    await connection.begin()
                    rows = (
                        await connection.execute(
                            select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload)
                            .order_by(outbox.c.id)
                            .limit(limit)
                            .with_for_update(skip_locked=True)
                        )
                    ).all()
                if not rows:
                    return 0
                # A failure here propagates unchanged; closing the connection rolls back, so
                # the rows stay for the next attempt.
                await publisher.publish_batch([OutboxEvent(row.topic, row.key, row.payload) for row in rows])
                with translate_errors():
                    await connection.execute(delete(outbox).where(outbox.c.id.in_([row.id for row in rows])))
                    await connection.commit()
                return len(rows)
            finally:
                await close_quietly(connection)

    async def backlog(self) -> int:
        async with exclusive_use(self._engine):
            with translate_errors():
                async with self._engine.connect() as connection:
                    return (await connection.execute(select(func.count()).select_from(outbox))).scalar_one()
