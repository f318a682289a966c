"""Webhook deliveries on SQL: stored as events are fed, claimed under a lease, and their attempts.

Claiming is one `UPDATE ... WHERE id IN (<the oldest due of each webhook, among candidates
SELECTed ... FOR UPDATE SKIP LOCKED>) RETURNING` on PostgreSQL: workers claiming at the same time skip each other's rows instead of waiting on
them or taking them twice. SQLite serializes its writers, so the same statement without the lock
clause is enough there.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chat4all.adapters.sql.webhook_tables import webhook_attempts, webhook_deliveries, webhooks
from chat4all.application.ports.webhooks import AttemptOutcome, ClaimedDelivery, CursorMove
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

    async def advance(self, moves: Sequence[CursorMove]) -> int:
        """Two statements for the whole round: the cursors that are still where they were read move
        (one UPDATE ... RETURNING), then the deliveries of those webhooks go in (one INSERT)."""
        if not moves:
            return 0
        async with self._transaction() as connection:
            moved = set((await connection.execute(_move_cursors(moves))).scalars())
            rows = [_row(each) for move in moves if move.webhook_id in moved for each in move.deliveries]
            if rows:
                upsert = postgresql.insert(d) if connection.dialect.name == "postgresql" else sqlite.insert(d)
                await connection.execute(upsert.on_conflict_do_nothing(), rows)
        return len(moved)

    async def claim(
        self, now: datetime, lease_until: datetime, skip: Sequence[UUID], per_webhook: int, limit: int
    ) -> list[ClaimedDelivery]:
        async with self._transaction() as connection:
            claimed = (
                await connection.execute(
                    update(d)
                    .where(d.c.id.in_(_claimable(connection.dialect.name, now, skip, per_webhook, limit)))
                    .values(lease_until=lease_until)
                    .returning(d)
                )
            ).all()
            if not claimed:
                return []
            owners = {
                row.id: row
                for row in await connection.execute(
                    select(webhooks.c.id, webhooks.c.url, webhooks.c.secret, webhooks.c.failing_since).where(
                        webhooks.c.id.in_({row.webhook_id for row in claimed})
                    )
                )
            }
        return [
            ClaimedDelivery(
                delivery_of(row),
                owners[row.webhook_id].url,
                owners[row.webhook_id].secret,
                owners[row.webhook_id].failing_since,
            )
            for row in sorted(claimed, key=lambda row: (row.next_attempt_at, row.seq))
        ]

    async def release(self, delivery_ids: Sequence[UUID]) -> None:
        async with self._transaction() as connection:
            await connection.execute(
                update(d).where(d.c.id.in_(list(delivery_ids)), d.c.state == PENDING).values(lease_until=None)
            )

    async def record(self, outcomes: Sequence[AttemptOutcome], now: datetime) -> None:
        async with self._transaction() as connection:
            await connection.execute(insert(webhook_attempts), [_attempt_row(each) for each in outcomes])
            await connection.execute(_delivery_change(), [_delivery_values(each) for each in outcomes])
            for statement in _endpoint_changes(outcomes, now):
                await connection.execute(statement)

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


def _claimable(dialect: str, now: datetime, skip: Sequence[UUID], per_webhook: int, limit: int):  # type: ignore[no-untyped-def]
    """The ids of the due deliveries to claim: the oldest `per_webhook` of each enabled webhook not
    in `skip`. PostgreSQL locks the candidates first (`FOR UPDATE SKIP LOCKED` cannot sit next to
    the window function), so concurrent claimers pass over each other's rows."""
    candidates = (
        select(d.c.id, d.c.webhook_id, d.c.next_attempt_at)
        .join(webhooks, webhooks.c.id == d.c.webhook_id)
        .where(_due(now), webhooks.c.disabled_at.is_(None))
        .order_by(d.c.next_attempt_at)
        .limit(limit * 4)
    )
    if skip:
        candidates = candidates.where(d.c.webhook_id.not_in(list(skip)))
    if dialect == "postgresql":
        candidates = candidates.with_for_update(of=d, skip_locked=True)
    listed = candidates.subquery()
    rank = func.row_number().over(partition_by=listed.c.webhook_id, order_by=listed.c.next_attempt_at).label("rank")
    ranked = select(listed.c.id, rank).subquery()
    return select(ranked.c.id).where(ranked.c.rank <= per_webhook).limit(limit).scalar_subquery()


def _delivery_change():  # type: ignore[no-untyped-def]
    return (
        update(d)
        .where(d.c.id == bindparam("delivery_id"))
        .values(
            state=bindparam("new_state"),
            attempts=d.c.attempts + 1,
            next_attempt_at=bindparam("next_at"),
            first_attempt_at=func.coalesce(d.c.first_attempt_at, bindparam("attempted")),
            lease_until=None,
        )
    )


def _delivery_values(outcome: AttemptOutcome) -> dict[str, object]:
    if outcome.succeeded:
        state = DeliveryState.SUCCEEDED
    else:
        state = DeliveryState.PENDING if outcome.next_attempt_at is not None else DeliveryState.FAILED
    return {
        "delivery_id": outcome.delivery_id,
        "new_state": state.value,
        "next_at": outcome.next_attempt_at,
        "attempted": outcome.attempt.attempted_at,
    }


def _attempt_row(outcome: AttemptOutcome) -> dict[str, object]:
    attempt = outcome.attempt
    return {
        "delivery_id": outcome.delivery_id,
        "attempted_at": attempt.attempted_at,
        "status_code": attempt.status_code,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
    }


def _move_cursors(moves: Sequence[CursorMove]):  # type: ignore[no-untyped-def]
    """`UPDATE webhooks SET cursor = CASE id WHEN ... END WHERE (id = ... AND cursor = ...) OR ...
    RETURNING id`: each cursor moves only from where it was read."""
    target = case({move.webhook_id: move.to for move in moves}, value=webhooks.c.id, else_=webhooks.c.cursor)
    still = or_(*(and_(webhooks.c.id == move.webhook_id, webhooks.c.cursor == move.cursor) for move in moves))
    return update(webhooks).where(still).values(cursor=target).returning(webhooks.c.id)


def _endpoint_changes(outcomes: Sequence[AttemptOutcome], now: datetime):  # type: ignore[no-untyped-def]
    """Per endpoint, what its last outcome of the batch says: a success ends its failing streak, a
    failure starts one (if none is running), a reason to disable it disables it. One statement for
    the successes and one for the failures (a few rows of `webhooks`, whatever the batch), one per
    endpoint to disable."""
    last = {outcome.webhook_id: outcome for outcome in sorted(outcomes, key=lambda each: each.attempt.attempted_at)}
    healthy = sorted(webhook for webhook, outcome in last.items() if outcome.succeeded)
    failing = sorted(webhook for webhook, outcome in last.items() if not outcome.succeeded)
    if healthy:
        yield (
            update(webhooks)
            .where(webhooks.c.id.in_(healthy), webhooks.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
    if failing:
        since = min(last[webhook].attempt.attempted_at for webhook in failing)
        yield (
            update(webhooks)
            .where(webhooks.c.id.in_(failing), webhooks.c.failing_since.is_(None))
            .values(failing_since=since)
        )
    reasons = {outcome.webhook_id: outcome.disable_reason for outcome in outcomes if outcome.disable_reason}
    for webhook_id, reason in sorted(reasons.items()):
        yield (
            update(webhooks)
            .where(webhooks.c.id == webhook_id, webhooks.c.disabled_at.is_(None))
            .values(disabled_at=now, disabled_reason=reason)
        )


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
