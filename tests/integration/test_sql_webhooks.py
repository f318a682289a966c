"""Webhook deliveries on real databases: fed once however many processes feed, claimed by one
process at a time under a lease, and an endpoint disabled and enabled again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.adapters.sql.webhooks import SqlWebhookStore
from chat4all.application.ports.webhooks import AttemptOutcome, CursorMove
from chat4all.domain.events import EventType
from chat4all.domain.users import User
from chat4all.domain.webhooks import DeliveryAttempt, DeliveryState, Webhook, WebhookDelivery

pytestmark = pytest.mark.services

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


async def a_webhook(engine: AsyncEngine) -> tuple[SqlWebhookStore, Webhook]:
    owner = User(uuid4(), f"owner{uuid4().hex[:6]}", "h", NOW)
    async with SqlUnitOfWorkFactory(engine)() as tx:
        await tx.users.add(owner)
        await tx.commit()
    store = SqlWebhookStore(engine)
    webhook = Webhook(uuid4(), owner.id, "https://hooks.example.com/x", frozenset(EventType), "", "whsec_AA", NOW, 0)
    await store.add(webhook)
    return store, webhook


def deliveries(webhook_id: UUID, seqs: range) -> list[WebhookDelivery]:
    return [
        WebhookDelivery(uuid4(), webhook_id, seq, "message.created", "{}", DeliveryState.PENDING, 0, NOW, NOW)
        for seq in seqs
    ]


async def test_deliveries_are_fed_once_from_a_cursor(engine: AsyncEngine) -> None:
    store, webhook = await a_webhook(engine)
    assert await store.advance([CursorMove(webhook.id, 0, 3, deliveries(webhook.id, range(1, 4)))]) == 1
    # A second feeder that read the same cursor: refused, nothing stored twice.
    assert await store.advance([CursorMove(webhook.id, 0, 3, deliveries(webhook.id, range(1, 4)))]) == 0
    found, total = await store.deliveries(webhook.id, 10, 0)
    assert total == 3 and [each.seq for each in found] == [3, 2, 1]


async def test_concurrent_claims_never_take_a_delivery_twice(engine: AsyncEngine) -> None:
    store, webhook = await a_webhook(engine)
    await store.advance([CursorMove(webhook.id, 0, 60, deliveries(webhook.id, range(1, 61)))])
    taken: list[UUID] = []
    for _ in range(10):  # rounds of five claimers at once, at most 20 each, until none is left
        claims = await asyncio.gather(*(store.claim(NOW, NOW + LEASE, [], 20, 100) for _ in range(5)))
        assert all(len(batch) <= 20 for batch in claims)
        taken += [claim.delivery.id for batch in claims for claim in batch]
    assert len(taken) == len(set(taken)) == 60
    assert await store.claim(NOW + LEASE / 2, NOW + LEASE, [], 20, 100) == []
    # A process that claimed and died: its deliveries come back when the lease ends.
    assert len(await store.claim(NOW + LEASE * 2, NOW + LEASE * 3, [], 100, 100)) == 60


async def test_a_disabled_endpoint_is_not_due_until_enabled(engine: AsyncEngine) -> None:
    store, webhook = await a_webhook(engine)
    [delivery] = deliveries(webhook.id, range(1, 2))
    await store.advance([CursorMove(webhook.id, 0, 1, [delivery])])
    assert len(await store.claim(NOW, NOW + LEASE, [], 10, 10)) == 1
    failed = DeliveryAttempt(NOW, 500, 12, "HTTP 500")
    later = NOW + timedelta(hours=1)
    await store.record([AttemptOutcome(delivery.id, webhook.id, failed, False, later, "every attempt failed")], NOW)
    disabled = await store.get(webhook.owner_id, webhook.id)
    assert disabled is not None and not disabled.enabled and disabled.disabled_reason == "every attempt failed"
    assert await store.claim(later, later + LEASE, [], 10, 10) == []
    assert await store.enable(webhook.owner_id, webhook.id, NOW)
    assert [each.delivery.id for each in await store.claim(NOW, NOW + LEASE, [], 10, 10)] == [delivery.id]
    found, _ = await store.deliveries(webhook.id, 10, 0)
    assert found[0].attempts == 1 and found[0].history == (failed,)


async def test_released_deliveries_are_claimable_at_once(engine: AsyncEngine) -> None:
    store, webhook = await a_webhook(engine)
    await store.advance([CursorMove(webhook.id, 0, 2, deliveries(webhook.id, range(1, 3)))])
    claimed = await store.claim(NOW, NOW + LEASE, [], 10, 10)
    await store.release([each.delivery.id for each in claimed])
    assert len(await store.claim(NOW, NOW + LEASE, [], 10, 10)) == 2
