"""Failover through the use cases: a channel that fails for good hands its recipients to the next
channel, as a delivery request of its own; the history keeps every attempt per recipient."""

from __future__ import annotations

import attrs
import pytest

from chat4all.domain.errors import InvalidInput
from chat4all.domain.events import EventType
from chat4all.domain.messages import DeliveryStatus, MessageStatus


@pytest.fixture
async def people(hub):
    return await hub.users("alice", "bob", "carol")


async def send_with_failover(hub, sender, conversation, failover=("instagram",), channels=("whatsapp",)):
    request = attrs.evolve(hub.request(sender, conversation, channels=channels), failover=failover)
    return await hub.send.execute(sender.id, request)


def requested(hub) -> list[tuple[str, dict]]:
    return [(event.topic, dict(event.payload)) for event in hub.publisher.events if event.topic.endswith("_outgoing")]


async def test_a_permanently_failing_channel_falls_over_to_the_next(hub, people):
    alice, bob, _ = people
    message = await send_with_failover(hub, alice, await hub.conversation(alice, bob))
    hub.connectors["whatsapp"].fail_permanently("number does not exist")
    await hub.deliver.execute(message.id, "whatsapp")
    assert requested(hub) == [("instagram_outgoing", {"message_id": str(message.id), "channel": "instagram"})]
    assert (await hub.message(message.id)).status is MessageStatus.ROUTED

    await hub.deliver.execute(message.id, "instagram")
    done = await hub.message(message.id)
    assert done.status is MessageStatus.DELIVERED
    assert done.deliveries == {"whatsapp": DeliveryStatus.FAILED, "instagram": DeliveryStatus.DELIVERED}
    assert done.history[-1].detail == "delivered on: instagram (after whatsapp failed)"
    assert hub.connectors["instagram"].recipients_of(message.id) == [bob.id]
    _, receipts, _, attempts = await hub.read.detail(alice.id, message.id)
    assert [(a.recipient_id, a.channel, a.delivered, a.error) for a in attempts] == [
        (bob.id, "whatsapp", False, "number does not exist"),
        (bob.id, "instagram", True, None),
    ]
    assert receipts[0].delivered_at is not None
    told = [e.data for e in hub.store.user_events[alice.id] if e.type is EventType.MESSAGE_STATUS]
    assert [(e["status"], e["channel"]["name"], e["channel"]["status"]) for e in told] == [
        ("routed", "whatsapp", "failed"),
        ("delivered", "instagram", "delivered"),
    ]


async def test_the_next_channel_is_only_for_those_the_failed_one_did_not_reach(hub, people):
    alice, bob, carol = people
    team = await hub.conversation(alice, bob, carol)
    message = await send_with_failover(hub, alice, team)
    hub.connectors["whatsapp"].reject(carol.id)
    await hub.deliver.execute(message.id, "whatsapp")
    await hub.deliver.execute(message.id, "instagram")
    assert hub.connectors["whatsapp"].recipients_of(message.id) == [bob.id]
    assert hub.connectors["instagram"].recipients_of(message.id) == [carol.id]
    assert (await hub.message(message.id)).status is MessageStatus.DELIVERED


async def test_when_the_chain_runs_out_the_message_fails(hub, people):
    alice, bob, _ = people
    message = await send_with_failover(hub, alice, await hub.conversation(alice, bob))
    hub.connectors["whatsapp"].fail_permanently()
    hub.connectors["instagram"].fail_permanently("blocked")
    await hub.deliver.execute(message.id, "whatsapp")
    await hub.deliver.execute(message.id, "instagram")
    failed = await hub.message(message.id)
    assert failed.status is MessageStatus.FAILED and failed.history[-1].detail == "failed on: whatsapp, instagram"
    assert len(requested(hub)) == 1  # nothing after the last channel


async def test_a_message_without_failover_does_not_fall_over(hub, people):
    alice, bob, _ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    hub.connectors["whatsapp"].fail_permanently()
    await hub.deliver.execute(message.id, "whatsapp")
    assert requested(hub) == [] and (await hub.message(message.id)).status is MessageStatus.FAILED
    assert (await hub.read.detail(alice.id, message.id))[3] == []


@pytest.mark.parametrize(
    ("channels", "failover", "code"),
    [
        (("whatsapp",), ("telegram",), "unknown_channel"),
        (("whatsapp",), ("instagram", "instagram"), "duplicate_failover_channel"),
        (("whatsapp",), ("whatsapp",), "duplicate_failover_channel"),
        (("whatsapp", "instagram"), ("instagram",), "duplicate_failover_channel"),
        (("all",), ("instagram",), "duplicate_failover_channel"),
    ],
)
async def test_a_failover_that_cannot_be_followed_is_refused(hub, people, channels, failover, code):
    alice, bob, _ = people
    with pytest.raises(InvalidInput) as refused:
        await send_with_failover(hub, alice, await hub.conversation(alice, bob), failover, channels)
    assert refused.value.code == code
