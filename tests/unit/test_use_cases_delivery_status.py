"""Delivery outcomes reach the sender's event log and the recipients' receipts, with the outcome."""

from __future__ import annotations

import attrs
import pytest

from chat4all.application.routing import DeliverOnRoute
from chat4all.domain.events import EventType


@pytest.fixture
async def people(hub):
    return await hub.users("alice", "bob", "carol")


def status_events(hub, user) -> list[dict]:
    return [event.data for event in hub.store.user_events.get(user.id, []) if event.type is EventType.MESSAGE_STATUS]


async def receipts(hub, message) -> dict:
    async with hub.uow() as uow:
        return {receipt.recipient_id: receipt for receipt in await uow.receipts.for_message(message.id)}


async def test_a_delivered_channel_tells_the_sender_and_marks_the_receipts_delivered(hub, people):
    alice, bob, carol = people
    team = await hub.conversation(alice, bob, carol)
    message = await hub.send_text(alice, team, channels=("whatsapp", "instagram"))
    hub.clock.advance()
    await hub.deliver.execute(message.id, "whatsapp")
    delivered_at = hub.clock.now()
    [first] = status_events(hub, alice)
    assert first["message_id"] == str(message.id) and first["status"] == "routed"
    assert first["channel"] == {"name": "whatsapp", "status": "delivered", "detail": None} and first["receipt"] is None
    assert {recipient: receipt.delivered_at for recipient, receipt in (await receipts(hub, message)).items()} == {
        bob.id: delivered_at,
        carol.id: delivered_at,
    }
    hub.clock.advance()
    await hub.deliver.execute(message.id, "instagram")
    [_, second] = status_events(hub, alice)
    assert second["status"] == "delivered" and second["channel"] == {"name": "instagram", "status": "delivered", "detail": None}
    # The first channel's time stays: a receipt is delivered once.
    assert all(receipt.delivered_at == delivered_at for receipt in (await receipts(hub, message)).values())
    assert status_events(hub, bob) == status_events(hub, carol) == []


async def test_a_failed_channel_tells_the_sender_and_delivers_no_receipt(hub, people):
    alice, bob, _ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    hub.connectors["whatsapp"].fail_permanently("number does not exist")
    await hub.deliver.execute(message.id, "whatsapp")
    [told] = status_events(hub, alice)
    assert told["status"] == "failed"
    assert told["channel"] == {"name": "whatsapp", "status": "failed", "detail": "number does not exist"}
    assert (await receipts(hub, message))[bob.id].delivered_at is None


async def test_recipients_reached_before_a_channel_failed_have_it_delivered(hub, people):
    alice, bob, carol = people
    team = await hub.conversation(alice, bob, carol)
    message = await hub.send_text(alice, team)
    hub.connectors["whatsapp"].reject(carol.id)
    await hub.deliver.execute(message.id, "whatsapp")
    found = await receipts(hub, message)
    assert found[bob.id].delivered_at is not None and found[carol.id].delivered_at is None


async def test_a_redelivered_request_tells_nothing_twice_and_wakes_the_sender(hub, people):
    alice, bob, _ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    woken = len(hub.notifier.notified)
    await hub.deliver.execute(message.id, "whatsapp")
    await hub.deliver.execute(message.id, "whatsapp")
    assert len(status_events(hub, alice)) == 1
    assert alice.id in set().union(*hub.notifier.notified[woken:])


async def test_delivering_on_route_tells_the_sender_too(hub, people):
    alice, bob, _ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    route = attrs.evolve(hub.route, policy=DeliverOnRoute(hub.deliver))  # what the embedded profile does by default
    await route.execute(message.id)
    assert [event["status"] for event in status_events(hub, alice)] == ["delivered"]
