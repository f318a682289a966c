"""Webhook deliveries on SQL: stored as events are fed, claimed under a lease, and their attempts.

Claiming is one `UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED) RETURNING`
on PostgreSQL: workers claiming at the same time skip each other's rows instead of waiting on
them or taking them twice. SQLite serializes its writers, so the same statement without the lock
clause is enough there.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chat4all.adapters.sql.webhook_tables import webhook_attempts, webhook_deliveries, webhooks
from chat4all.application.ports.webhooks import AttemptOutcome, ClaimedDelivery
from chat4all.domain.webhooks import DeliveryAttempt, DeliveryState, WebhookDelivery

PENDING = DeliveryState.PENDING.value
d = webhook_deliveries


def delivery_of(row: object, history: Sequence[DeliveryAttempt] = ()) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,  # type: ignore[attr-defined]
        webhook_id=row.webhook_id,  # type: ignore[attr-defined]
        seq=row.seq,  # type: ignore[attr-defined]
        event_type=row.event_type,  # type: ignore[attr-defined]
        body=row.body,  # type: ignore[attr-defined]
        state=DeliveryState(row.state),  # type: ignore[attr-defined]
        attempts=row.attempts,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        next_attempt_at=row.next_attempt_at,  # type: ignore[attr-defined]
        first_attempt_at=row.first_attempt_at,  # type: ignore[attr-defined]
        history=tuple(history),
    )


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return and_(d.c.state == PENDING, d.c.next_attempt_at <= now, or_(d.c.lease_until.is_(None), d.c.lease_until < now))


class SqlDeliveryQueue:
    def _transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    async def advance(self, webhook_id: UUID, cursor: int, to: int, deliveries: Sequence[WebhookDelivery]) -> bool:
        async with self._transaction() as connection:
            moved = await connection.execute(
                update(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.cursor == cursor).values(cursor=to)
            )
            if moved.rowcount != 1:
                return False
            if deliveries:
                upsert = postgresql.insert(d) if connection.dialect.name == "postgresql" else sqlite.insert(d)
                await connection.execute(upsert.on_conflict_do_nothing(), [_row(each) for each in deliveries])
        return True

    async def due_webhooks(self, now: datetime, skip: Sequence[UUID], limit: int) -> list[UUID]:
        query = (
            select(d.c.webhook_id)
            .join(webhooks, webhooks.c.id == d.c.webhook_id)
            .where(_due(now), webhooks.c.disabled_at.is_(None))
            .group_by(d.c.webhook_id)
            .limit(limit)
        )
        if skip:
            query = query.where(d.c.webhook_id.not_in(list(skip)))
        async with self._transaction() as connection:
            return list((await connection.execute(query)).scalars())

    async def claim(self, webhook_id: UUID, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedDelivery]:
        async with self._transaction() as connection:
            due = (
                select(d.c.id).where(d.c.webhook_id == webhook_id, _due(now)).order_by(d.c.next_attempt_at).limit(limit)
            )
            if connection.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            claimed = (
                await connection.execute(
                    update(d).where(d.c.id.in_(due.scalar_subquery())).values(lease_until=lease_until).returning(d)
                )
            ).all()
            if not claimed:
                return []
            owner = (
                await connection.execute(
                    select(webhooks.c.url, webhooks.c.secret, webhooks.c.failing_since, webhooks.c.disabled_at).where(
                        webhooks.c.id == webhook_id
                    )
                )
            ).one()
        if owner.disabled_at is not None:  # disabled meanwhile: its lease ends and it waits, unsent
            return []
        return [ClaimedDelivery(delivery_of(row), owner.url, owner.secret, owner.failing_since) for row in claimed]

    async def record(self, outcome: AttemptOutcome, now: datetime) -> None:
        attempt = outcome.attempt
        if outcome.succeeded:
            state = DeliveryState.SUCCEEDED
        else:
            state = DeliveryState.PENDING if outcome.next_attempt_at is not None else DeliveryState.FAILED
        async with self._transaction() as connection:
            await connection.execute(
                insert(webhook_attempts),
                {
                    "delivery_id": outcome.delivery_id,
                    "attempted_at": attempt.attempted_at,
                    "status_code": attempt.status_code,
                    "latency_ms": attempt.latency_ms,
                    "error": attempt.error,
                },
            )
            await connection.execute(
                update(d)
                .where(d.c.id == outcome.delivery_id)
                .values(
                    state=state.value,
                    attempts=d.c.attempts + 1,
                    next_attempt_at=outcome.next_attempt_at,
                    first_attempt_at=func.coalesce(d.c.first_attempt_at, attempt.attempted_at),
                    lease_until=None,
                )
            )
            await connection.execute(_endpoint_change(outcome, now))

    async def deliveries(self, webhook_id: UUID, limit: int, offset: int) -> tuple[list[WebhookDelivery], int]:
        page = select(d).where(d.c.webhook_id == webhook_id).order_by(d.c.seq.desc()).limit(limit).offset(offset)
        total = select(func.count()).select_from(d).where(d.c.webhook_id == webhook_id)
        async with self._transaction() as connection:
            rows = (await connection.execute(page)).all()
            attempts = (
                await connection.execute(
                    select(webhook_attempts)
                    .where(webhook_attempts.c.delivery_id.in_([row.id for row in rows]))
                    .order_by(webhook_attempts.c.id)
                )
            ).all()
            count = (await connection.execute(total)).scalar_one()
        history: dict[UUID, list[DeliveryAttempt]] = {}
        for each in attempts:
            history.setdefault(each.delivery_id, []).append(
                DeliveryAttempt(each.attempted_at, each.status_code, each.latency_ms, each.error)
            )
        return [delivery_of(row, history.get(row.id, ())) for row in rows], count

    async def retry(self, webhook_id: UUID, delivery_id: UUID, now: datetime) -> WebhookDelivery | None:
        async with self._transaction() as connection:
            row = (
                await connection.execute(
                    update(d)
                    .where(d.c.id == delivery_id, d.c.webhook_id == webhook_id)
                    .values(state=PENDING, next_attempt_at=now, attempts=0, first_attempt_at=None, lease_until=None)
                    .returning(d)
                )
            ).one_or_none()
        return None if row is None else delivery_of(row)

    async def purge_before(self, before: datetime, limit: int) -> int:
        doomed = select(d.c.id).where(d.c.created_at < before, d.c.state != PENDING).limit(limit)
        async with self._transaction() as connection:
            done = await connection.execute(delete(d).where(d.c.id.in_(doomed.scalar_subquery())))
        return done.rowcount


def _endpoint_change(outcome: AttemptOutcome, now: datetime):  # type: ignore[no-untyped-def]
    endpoint = update(webhooks).where(webhooks.c.id == outcome.webhook_id)
    if outcome.succeeded:
        return endpoint.values(failing_since=None)
    values = {"failing_since": func.coalesce(webhooks.c.failing_since, outcome.attempt.attempted_at)}
    if outcome.disable_reason is not None:
        values |= {
            "disabled_at": case((webhooks.c.disabled_at.is_(None), now), else_=webhooks.c.disabled_at),
            "disabled_reason": func.coalesce(webhooks.c.disabled_reason, outcome.disable_reason),
        }
    return endpoint.values(**values)


def _row(delivery: WebhookDelivery) -> dict[str, object]:
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "seq": delivery.seq,
        "event_type": delivery.event_type,
        "body": delivery.body,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
    }
