"""Webhook use cases on in-memory adapters: destinations checked when a webhook is made and again
before every attempt, and one endpoint's slots apart from another's."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest

from chat4all.application.ports.webhooks import ClaimedDelivery
from chat4all.application.webhook_sender import SendWebhooks
from chat4all.application.webhooks import ManageWebhooks, WebhookPolicy
from chat4all.domain.errors import InvalidInput, QuotaExceeded
from chat4all.domain.webhooks import MAX_WEBHOOKS_PER_USER, DeliveryState, WebhookDelivery
from tests.fakes import ManualClock, SequentialIds
from tests.fakes.webhooks import FixedSigner, HeldTransport, InMemoryWebhookStore, StaticResolver

PUBLIC = {"hooks.example.com": ["93.184.216.34"], "inside.example.com": ["10.0.0.5"]}


def manage(store: InMemoryWebhookStore, resolver: StaticResolver, allow_private: bool = False) -> ManageWebhooks:
    return ManageWebhooks(store, FixedSigner(), resolver, ManualClock(), SequentialIds(), WebhookPolicy(allow_private))


async def test_a_webhook_starts_after_the_owners_newest_event_with_a_secret() -> None:
    store = InMemoryWebhookStore()
    webhook = await manage(store, StaticResolver(PUBLIC)).create(
        uuid4(), "https://hooks.example.com/x", ["message.status"], ""
    )
    assert webhook.cursor == 7 and webhook.secret.startswith("whsec_")
    assert store.webhooks == {webhook.id: webhook}


@pytest.mark.parametrize(
    "url", ["https://inside.example.com/x", "https://unknown.example.com/x", "http://hooks.example.com/x"]
)
async def test_private_unresolved_or_plain_http_destinations_are_refused(url: str) -> None:
    store = InMemoryWebhookStore()
    with pytest.raises(InvalidInput):
        await manage(store, StaticResolver(PUBLIC)).create(uuid4(), url, ["message.status"], "")
    assert store.webhooks == {}


async def test_private_destinations_when_allowed() -> None:
    store = InMemoryWebhookStore()
    made = await manage(store, StaticResolver({}), allow_private=True).create(
        uuid4(), "http://127.0.0.1:9/x", ["message.created"], "local"
    )
    assert made.url == "http://127.0.0.1:9/x"


async def test_a_user_has_a_bounded_number_of_webhooks() -> None:
    store, owner = InMemoryWebhookStore(), uuid4()
    use_case = manage(store, StaticResolver(PUBLIC))
    for _ in range(MAX_WEBHOOKS_PER_USER):
        await use_case.create(owner, "https://hooks.example.com/x", ["message.status"], "")
    with pytest.raises(QuotaExceeded):
        await use_case.create(owner, "https://hooks.example.com/x", ["message.status"], "")


def claim(webhook_id, url: str = "https://hooks.example.com/x") -> ClaimedDelivery:
    delivery = WebhookDelivery(
        id=uuid4(),
        webhook_id=webhook_id,
        seq=1,
        event_type="message.created",
        body='{"seq":1}',
        state=DeliveryState.PENDING,
        attempts=0,
        created_at=ManualClock().now(),
        next_attempt_at=ManualClock().now(),
    )
    return ClaimedDelivery(delivery, url, "whsec_c2VjcmV0", None)


async def test_a_host_that_now_resolves_inside_is_not_called_and_the_attempt_fails() -> None:
    store, transport = InMemoryWebhookStore(), HeldTransport()
    sender = SendWebhooks(store, transport, FixedSigner(), StaticResolver(PUBLIC), ManualClock(), jitter=lambda: 0.0)
    await sender.attempt(claim(uuid4(), "https://inside.example.com/x"))
    await sender.flush()
    assert transport.posts == []
    [outcome] = store.recorded
    assert not outcome.succeeded and outcome.attempt.error.startswith("refused")
    assert outcome.next_attempt_at == outcome.attempt.attempted_at + timedelta(seconds=5)


async def test_a_busy_endpoint_takes_only_its_own_slots() -> None:
    store, transport = InMemoryWebhookStore(), HeldTransport()
    slow, other = uuid4(), uuid4()
    store.due = {slow: [claim(slow) for _ in range(20)], other: [claim(other) for _ in range(3)]}
    sender = SendWebhooks(store, transport, FixedSigner(), StaticResolver(PUBLIC), ManualClock(), per_endpoint=4)
    assert await sender.execute() == 4 + 3
    assert await sender.execute() == 0  # the slow one's slots are full: none of its deliveries is claimed
    await asyncio.sleep(0)
    assert len(transport.posts) == 7 and len(store.due[slow]) == 16
    assert all(headers["webhook-signature"] == f"v1,{headers['webhook-id']}" for _, _, headers in transport.posts)
    transport.release.set()
    for _ in range(10):
        await asyncio.sleep(0)
    await sender.flush()
    assert len(store.recorded) == 7 and all(each.succeeded for each in store.recorded)
    assert await sender.execute() == 4  # slots free again


async def test_stopping_hands_back_what_is_in_flight_at_once() -> None:
    store, transport = InMemoryWebhookStore(), HeldTransport()
    webhook = uuid4()
    store.due = {webhook: [claim(webhook) for _ in range(3)]}
    sender = SendWebhooks(store, transport, FixedSigner(), StaticResolver(PUBLIC), ManualClock(), per_endpoint=2)
    running = asyncio.create_task(sender.run(poll=0.01))
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(transport.posts) == 2  # the webhook's two slots; the third is not claimed
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    in_flight = {headers["webhook-id"] for _, _, headers in transport.posts}
    assert {str(each) for each in store.released} == in_flight and store.recorded == []
    assert len(store.due[webhook]) == 1
