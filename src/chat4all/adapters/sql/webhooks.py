"""`WebhookStore` on SQL (both engines): the endpoints here, their deliveries in `webhook_queue`.

Every call is a transaction of its own on the engine's pool (like the event log's reader): the
webhook loops run outside any unit of work.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import translate_errors
from chat4all.adapters.sql.tables import user_event_counters, user_events
from chat4all.adapters.sql.webhook_queue import SqlDeliveryQueue
from chat4all.adapters.sql.webhook_tables import webhook_deliveries, webhooks
from chat4all.application.ports.webhooks import EventRange
from chat4all.domain.events import EventType, UserEvent
from chat4all.domain.webhooks import DeliveryState, Webhook


def webhook_of(row: object) -> Webhook:
    return Webhook(
        id=row.id,  # type: ignore[attr-defined]
        owner_id=row.owner_id,  # type: ignore[attr-defined]
        url=row.url,  # type: ignore[attr-defined]
        events=frozenset(EventType(name) for name in row.event_types),  # type: ignore[attr-defined]
        description=row.description,  # type: ignore[attr-defined]
        secret=row.secret,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        cursor=row.cursor,  # type: ignore[attr-defined]
        disabled_at=row.disabled_at,  # type: ignore[attr-defined]
        disabled_reason=row.disabled_reason,  # type: ignore[attr-defined]
        failing_since=row.failing_since,  # type: ignore[attr-defined]
    )


class SqlWebhookStore(SqlDeliveryQueue):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        async with exclusive_use(self._engine):
            with translate_errors():
                async with self._engine.begin() as connection:
                    yield connection

    async def add(self, webhook: Webhook) -> None:
        row = {
            "id": webhook.id,
            "owner_id": webhook.owner_id,
            "url": webhook.url,
            "description": webhook.description,
            "event_types": sorted(kind.value for kind in webhook.events),
            "secret": webhook.secret,
            "created_at": webhook.created_at,
            "cursor": webhook.cursor,
        }
        async with self._transaction() as connection:
            await connection.execute(insert(webhooks), row)

    async def count_owned(self, owner_id: UUID) -> int:
        async with self._transaction() as connection:
            query = select(func.count()).select_from(webhooks).where(webhooks.c.owner_id == owner_id)
            return (await connection.execute(query)).scalar_one()

    async def owned(self, owner_id: UUID) -> list[Webhook]:
        query = select(webhooks).where(webhooks.c.owner_id == owner_id).order_by(webhooks.c.created_at, webhooks.c.id)
        async with self._transaction() as connection:
            return [webhook_of(row) for row in await connection.execute(query)]

    async def get(self, owner_id: UUID, webhook_id: UUID) -> Webhook | None:
        query = select(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.owner_id == owner_id)
        async with self._transaction() as connection:
            row = (await connection.execute(query)).one_or_none()
        return None if row is None else webhook_of(row)

    async def remove(self, owner_id: UUID, webhook_id: UUID) -> bool:
        async with self._transaction() as connection:
            # Its deliveries and their attempts go with it (ON DELETE CASCADE).
            done = await connection.execute(
                delete(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.owner_id == owner_id)
            )
        return done.rowcount == 1

    async def set_secret(self, owner_id: UUID, webhook_id: UUID, secret: str) -> bool:
        return await self._change(owner_id, webhook_id, secret=secret)

    async def disable(self, owner_id: UUID, webhook_id: UUID, now: datetime, reason: str) -> bool:
        return await self._change(owner_id, webhook_id, disabled_at=now, disabled_reason=reason)

    async def enable(self, owner_id: UUID, webhook_id: UUID, now: datetime) -> bool:
        async with self._transaction() as connection:
            done = await connection.execute(
                update(webhooks)
                .where(webhooks.c.id == webhook_id, webhooks.c.owner_id == owner_id)
                .values(disabled_at=None, disabled_reason=None, failing_since=None)
            )
            if done.rowcount != 1:
                return False
            await connection.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.webhook_id == webhook_id,
                    webhook_deliveries.c.state == DeliveryState.PENDING.value,
                )
                .values(next_attempt_at=now)
            )
        return True

    async def _change(self, owner_id: UUID, webhook_id: UUID, **values: object) -> bool:
        async with self._transaction() as connection:
            done = await connection.execute(
                update(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.owner_id == owner_id).values(**values)
            )
        return done.rowcount == 1

    async def last_seq(self, owner_id: UUID) -> int:
        query = select(user_event_counters.c.last_seq).where(user_event_counters.c.user_id == owner_id)
        async with self._transaction() as connection:
            return (await connection.execute(query)).scalar_one_or_none() or 0

    async def behind(self, limit: int) -> list[tuple[Webhook, int]]:
        query = (
            select(webhooks, user_event_counters.c.last_seq)
            .join(user_event_counters, user_event_counters.c.user_id == webhooks.c.owner_id)
            .where(webhooks.c.disabled_at.is_(None), user_event_counters.c.last_seq > webhooks.c.cursor)
            .limit(limit)
        )
        async with self._transaction() as connection:
            return [(webhook_of(row), row.last_seq) for row in await connection.execute(query)]

    async def events_in(self, ranges: Sequence[EventRange]) -> list[list[UserEvent]]:
        if not ranges:
            return []
        e = user_events
        wanted = or_(
            *(and_(e.c.user_id == each.owner_id, e.c.seq > each.after, e.c.seq <= each.up_to) for each in ranges)
        )
        query = select(e.c.user_id, e.c.seq, e.c.type, e.c.at, e.c.data).where(wanted).order_by(e.c.user_id, e.c.seq)
        async with self._transaction() as connection:
            rows = (await connection.execute(query)).all()
        # Each owner's rows once, then each range among its owner's alone (not among every row: a
        # round of 100 webhooks behind made that 100 passes over all of their events).
        by_owner: dict[UUID, list[UserEvent]] = {}
        for row in rows:
            by_owner.setdefault(row.user_id, []).append(UserEvent(row.seq, EventType(row.type), row.at, row.data))
        return [
            [event for event in by_owner.get(each.owner_id, ()) if each.after < event.seq <= each.up_to] for each in ranges
        ]
