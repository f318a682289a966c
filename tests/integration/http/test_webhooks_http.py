"""Outbound webhooks end to end, on both profiles (embedded in-process; distributed with an API
process and a real worker on PostgreSQL and Kafka), delivering to a real HTTP receiver on
loopback (allowed by CHAT4ALL_WEBHOOK_ALLOW_PRIVATE). Retries run on the product's schedule."""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio

from tests.integration.http.conftest import PROFILES
from tests.integration.http.helpers import conversation, text_message
from tests.integration.http.profiles import distributed, embedded
from tests.integration.http.webhook_receiver import Receiver

pytestmark = pytest.mark.services
ALLOW_PRIVATE = {"CHAT4ALL_WEBHOOK_ALLOW_PRIVATE": "true"}


@pytest_asyncio.fixture(scope="session", params=PROFILES)
async def hub(request, tmp_path_factory):
    factory = embedded if request.param == "embedded" else distributed
    async with factory(tmp_path_factory.mktemp(f"webhooks-{request.param}"), ALLOW_PRIVATE) as running:
        yield running


@pytest_asyncio.fixture
async def receiver():
    running = Receiver()
    await running.start()
    yield running
    await running.stop()


class Scene:
    """An owner with a webhook, and a peer who writes to them: each message is a `message.created`
    event in the owner's log."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self.client = hub.client

    async def setup(self) -> Scene:
        self.owner_id, self.owner = await self.hub.user()
        self.peer_id, self.peer = await self.hub.user()
        self.conversation = await conversation(self.hub, self.peer, [self.peer_id, self.owner_id])
        return self

    async def webhook(self, receiver: Receiver, events=("message.created",), headers=None) -> dict:
        response = await self.client.post(
            "/v1/webhooks",
            json={"url": receiver.url, "events": list(events), "description": "test"},
            headers=headers or self.owner,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        receiver.secret = created["secret"]
        return created

    async def send(self, count: int, text: str = "hi") -> None:
        for number in range(count):
            body = text_message(self.conversation, self.peer_id, f"{text} {number}")
            response = await self.client.post("/v1/messages", json=body, headers=self.peer)
            assert response.status_code in (200, 202), response.text

    async def deliveries(self, webhook_id: str) -> list[dict]:
        response = await self.client.get(f"/v1/webhooks/{webhook_id}/deliveries?limit=100", headers=self.owner)
        assert response.status_code == 200, response.text
        return response.json()["deliveries"]

    async def settled_deliveries(self, webhook_id: str, timeout: float = 20) -> list[dict]:
        """The deliveries once none is pending: an answer reaches the receiver before its outcome
        is recorded (outcomes are written in batches)."""
        async with asyncio.timeout(timeout):
            while True:
                deliveries = await self.deliveries(webhook_id)
                if all(each["state"] != "pending" for each in deliveries):
                    return deliveries
                await asyncio.sleep(0.2)


async def test_events_arrive_signed_with_the_logs_seq_and_only_the_chosen_types(hub, receiver) -> None:
    scene = await Scene(hub).setup()
    created = await scene.webhook(receiver)
    assert created["secret"].startswith("whsec_")
    await scene.send(3)
    await receiver.wait_for(3, timeout=20)
    assert all(each["valid"] for each in receiver.received)
    assert {each["body"]["type"] for each in receiver.received} == {"message.created"}
    log = (await scene.client.get("/v1/events?since=0&timeout=0", headers=scene.owner)).json()["events"]
    created_seqs = {event["seq"] for event in log if event["type"] == "message.created"}
    assert receiver.seqs() == created_seqs
    # Statuses are the sender's events, conversation.created was before the webhook: none came.
    deliveries = await scene.settled_deliveries(created["id"])
    assert sorted(each["seq"] for each in deliveries) == sorted(created_seqs)
    assert {each["state"] for each in deliveries} == {"succeeded"}
    assert all(each["history"][0]["status_code"] == 200 for each in deliveries)
    listed = (await scene.client.get(f"/v1/webhooks/{created['id']}", headers=scene.owner)).json()
    assert "secret" not in listed and listed["enabled"] is True


async def test_a_webhook_is_its_owners_alone(hub, receiver) -> None:
    scene = await Scene(hub).setup()
    created = await scene.webhook(receiver)
    path = f"/v1/webhooks/{created['id']}"
    for method, url in [
        ("GET", path),
        ("DELETE", path),
        ("GET", path + "/deliveries"),
        ("POST", path + "/rotate-secret"),
    ]:
        response = await scene.client.request(method, url, headers=scene.peer)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error_code"] == "webhook_not_found"
    assert (await scene.client.get("/v1/webhooks", headers=scene.peer)).json()["webhooks"] == []
    assert [
        each["id"] for each in (await scene.client.get("/v1/webhooks", headers=scene.owner)).json()["webhooks"]
    ] == [created["id"]]
    assert (await scene.client.delete(path, headers=scene.owner)).status_code == 204
    assert (await scene.client.get(path, headers=scene.owner)).status_code == 404


async def test_a_rotated_secret_signs_what_follows(hub, receiver) -> None:
    scene = await Scene(hub).setup()
    created = await scene.webhook(receiver)
    rotated = await scene.client.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=scene.owner)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != created["secret"]
    receiver.secret = rotated.json()["secret"]
    await scene.send(1)
    await receiver.wait_for(1, timeout=20)
    assert receiver.received[0]["valid"]


async def test_a_manual_retry_resends_with_the_same_webhook_id(hub, receiver) -> None:
    scene = await Scene(hub).setup()
    created = await scene.webhook(receiver)
    await scene.send(1)
    await receiver.wait_for(1, timeout=20)
    delivery_id = receiver.ids()[0]
    response = await scene.client.post(
        f"/v1/webhooks/{created['id']}/deliveries/{delivery_id}/retry", headers=scene.owner
    )
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 20
    while len(receiver.received) < 2:
        assert time.monotonic() < deadline, "the retry never arrived"
        await asyncio.sleep(0.05)
    assert receiver.ids() == [delivery_id, delivery_id]
    assert receiver.received[0]["body"] == receiver.received[1]["body"]


async def test_a_receiver_down_for_30_s_gets_every_event_once_back(hub, receiver) -> None:
    scene = await Scene(hub).setup()
    created = await scene.webhook(receiver)
    await receiver.stop()
    await scene.send(5)
    await asyncio.sleep(30)
    await receiver.start()
    # The default schedule: 5 s, then 30 s (±10 %) after the first failures, which fall in the outage.
    await receiver.wait_for(5, timeout=30)
    await asyncio.sleep(1)
    assert sorted(receiver.ids()) == sorted(set(receiver.ids())), "a delivery arrived twice"
    assert all(each["valid"] for each in receiver.received)
    deliveries = await scene.settled_deliveries(created["id"])
    assert {each["state"] for each in deliveries} == {"succeeded"}
    failed = [attempt for each in deliveries for attempt in each["history"] if attempt["status_code"] is None]
    assert failed and all(attempt["error"] for attempt in failed)


async def test_with_one_answer_in_five_a_500_everything_arrives(hub, receiver) -> None:
    scene = await Scene(hub).setup()
    created = await scene.webhook(receiver)
    receiver.answer = lambda number: 500 if number % 5 == 0 else 200
    await scene.send(20)
    await receiver.wait_for(20, timeout=90)
    assert len(receiver.seqs()) == 20
    deliveries = await scene.settled_deliveries(created["id"])
    statuses = [attempt["status_code"] for each in deliveries for attempt in each["history"]]
    assert 500 in statuses and {each["state"] for each in deliveries} == {"succeeded"}


async def test_a_hanging_receiver_does_not_delay_another_webhook(hub, receiver) -> None:
    hanging = Receiver()
    hanging.hang = True
    await hanging.start()
    try:
        scene = await Scene(hub).setup()
        await scene.webhook(hanging)
        await scene.webhook(receiver)
        started = time.monotonic()
        await scene.send(30)
        await receiver.wait_for(30, timeout=8)  # the hanging one holds its deliveries for 10 s each
        assert time.monotonic() - started < 8
        assert hanging.requests >= 1 and not hanging.received
    finally:
        await hanging.stop()


async def test_a_paused_webhook_gets_the_events_it_missed_once_enabled(hub, receiver) -> None:
    scene = await Scene(hub).setup()
    created = await scene.webhook(receiver)
    path = f"/v1/webhooks/{created['id']}"
    paused = await scene.client.post(path + "/disable", headers=scene.owner)
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    assert paused.json()["disabled_reason"] == "disabled by its owner"
    await scene.send(2)
    await asyncio.sleep(2)
    assert receiver.received == []
    assert (await scene.client.post(path + "/enable", headers=scene.owner)).json()["enabled"] is True
    await receiver.wait_for(2, timeout=20)
