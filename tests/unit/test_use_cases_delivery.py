from __future__ import annotations

from uuid import UUID

import pytest

from chat4all.application.delivery import DeliverMessage
from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
from chat4all.domain.errors import TransientDeliveryFailure
from chat4all.domain.messages import DeliveryStatus, MessageStatus
from tests.fakes import RecordingConnector


@pytest.fixture
async def people(hub):
    return await hub.users("alice", "bob", "carol", "dave")


def statuses(message) -> list[tuple[str, str | None]]:
    return [(event.status, event.channel) for event in message.history]


# --- routing ---------------------------------------------------------------------------------


async def test_routing_publishes_one_event_per_channel_keyed_by_conversation(hub, people):
    alice, bob, *_ = people
    chat = await hub.conversation(alice, bob)
    message = await hub.send_text(alice, chat, channels=("whatsapp", "instagram"))
    hub.clock.advance()
    await hub.route.execute(message.id)
    assert [(event.topic, event.key, event.payload) for event in hub.publisher.events] == [
        ("whatsapp_outgoing", str(chat.id), {"message_id": str(message.id), "channel": "whatsapp"}),
        ("instagram_outgoing", str(chat.id), {"message_id": str(message.id), "channel": "instagram"}),
    ]
    routed = await hub.message(message.id)
    assert routed.status is MessageStatus.ROUTED
    assert routed.history[-1].status == "routed" and routed.history[-1].at == hub.clock.now()


async def test_redelivered_routing_request_records_nothing_new(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    await hub.route.execute(message.id)
    hub.clock.advance()
    await hub.route.execute(message.id)
    assert statuses(await hub.message(message.id)) == [("accepted", None), ("routed", None)]


async def test_rerouting_republishes_only_channels_still_pending(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp", "instagram"))
    await hub.route.execute(message.id)
    await hub.deliver.execute(message.id, "whatsapp")
    hub.publisher.events.clear()
    await hub.route.execute(message.id)
    assert [event.topic for event in hub.publisher.events] == ["instagram_outgoing"]


async def test_routing_an_unknown_message_does_nothing(hub):
    await hub.route.execute(hub.ids.new_id())
    assert hub.publisher.events == []


# --- delivering ------------------------------------------------------------------------------


async def test_private_message_reaches_the_other_member(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    await hub.route.execute(message.id)
    hub.clock.advance()
    await hub.deliver.execute(message.id, "whatsapp")
    assert hub.connectors["whatsapp"].recipients_of(message.id) == [bob.id]
    delivered = await hub.message(message.id)
    assert delivered.status is MessageStatus.DELIVERED
    assert delivered.deliveries == {"whatsapp": DeliveryStatus.DELIVERED}
    assert statuses(delivered) == [("accepted", None), ("routed", None), ("delivered", "whatsapp"), ("delivered", None)]
    assert delivered.history[-1].at == hub.clock.now()


async def test_group_message_reaches_every_member_but_the_sender(hub, people):
    alice, bob, carol, dave = people
    group = await hub.conversation(alice, bob, carol, dave)
    message = await hub.send_text(bob, group)
    await hub.deliver.execute(message.id, "whatsapp")
    assert hub.connectors["whatsapp"].recipients_of(message.id) == [alice.id, carol.id, dave.id]


async def test_message_to_one_member_reaches_only_them(hub, people):
    alice, bob, carol, dave = people
    group = await hub.conversation(alice, bob, carol, dave)
    message = await hub.send_text(alice, group, to=carol)
    await hub.deliver.execute(message.id, "whatsapp")
    assert hub.connectors["whatsapp"].recipients_of(message.id) == [carol.id]


async def test_message_is_delivered_only_once_every_channel_delivered(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp", "instagram"))
    await hub.route.execute(message.id)
    await hub.deliver.execute(message.id, "instagram")
    halfway = await hub.message(message.id)
    assert halfway.status is MessageStatus.ROUTED
    assert halfway.deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.DELIVERED}
    await hub.deliver.execute(message.id, "whatsapp")
    assert (await hub.message(message.id)).status is MessageStatus.DELIVERED


async def test_redelivered_request_does_not_deliver_again(hub, people):
    alice, bob, carol, _ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob, carol))
    await hub.deliver.execute(message.id, "whatsapp")
    before = statuses(await hub.message(message.id))
    await hub.deliver.execute(message.id, "whatsapp")
    assert hub.connectors["whatsapp"].attempts == [(message.id, bob.id), (message.id, carol.id)]
    assert statuses(await hub.message(message.id)) == before


async def test_delivering_an_unknown_message_or_channel_does_nothing(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp",))
    await hub.deliver.execute(hub.ids.new_id(), "whatsapp")
    await hub.deliver.execute(message.id, "instagram")
    assert hub.connectors["instagram"].attempts == [] and hub.connectors["whatsapp"].attempts == []
    assert (await hub.message(message.id)).status is MessageStatus.ACCEPTED


async def test_transient_failures_are_retried_with_backoff_until_delivered(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    hub.connectors["whatsapp"].fail_transiently(hub.retry.attempts - 1)
    await hub.deliver.execute(message.id, "whatsapp")
    assert hub.connectors["whatsapp"].delivered == [(message.id, bob.id)]
    assert hub.sleeps == [0.5, 1.0]
    assert (await hub.message(message.id)).status is MessageStatus.DELIVERED


class FlakyOnce(RecordingConnector):
    """Fails once, on one recipient only."""

    def __init__(self, name: str, flaky_recipient: UUID) -> None:
        super().__init__(name)
        self.flaky_recipient = flaky_recipient

    async def deliver(self, message, recipient_id):
        if recipient_id == self.flaky_recipient:
            self.flaky_recipient = None
            self.attempts.append((message.id, recipient_id))
            raise TransientDeliveryFailure("connection reset")
        await super().deliver(message, recipient_id)


async def test_a_retry_resumes_with_the_recipients_not_yet_reached(hub, people):
    alice, bob, carol, dave = people
    flaky = FlakyOnce("whatsapp", flaky_recipient=carol.id)
    deliver = DeliverMessage(hub.uow, hub.clock, {"whatsapp": flaky}, hub.storage, hub.deliver.sleep, hub.retry, caches=hub.deliver.caches)
    message = await hub.send_text(alice, await hub.conversation(alice, bob, carol, dave))
    await deliver.execute(message.id, "whatsapp")
    assert flaky.recipients_of(message.id) == [bob.id, carol.id, dave.id]
    assert (await hub.message(message.id)).status is MessageStatus.DELIVERED


async def test_spent_retry_budget_fails_the_channel_and_the_message_with_the_reason(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp", "instagram"))
    hub.connectors["whatsapp"].fail_transiently(hub.retry.attempts)
    await hub.deliver.execute(message.id, "whatsapp")
    await hub.deliver.execute(message.id, "instagram")
    assert len(hub.connectors["whatsapp"].attempts) == hub.retry.attempts
    assert hub.connectors["whatsapp"].delivered == []
    failed = await hub.message(message.id)
    assert failed.status is MessageStatus.FAILED
    assert failed.deliveries == {"whatsapp": DeliveryStatus.FAILED, "instagram": DeliveryStatus.DELIVERED}
    whatsapp = next(event for event in failed.history if event.channel == "whatsapp")
    assert whatsapp.status == "failed"
    assert whatsapp.detail == f"gave up after {hub.retry.attempts} attempts: whatsapp is temporarily unavailable"
    assert (failed.history[-1].status, failed.history[-1].detail) == ("failed", "failed on: whatsapp")


async def test_permanent_failure_is_not_retried(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    hub.connectors["whatsapp"].fail_permanently("number does not exist")
    await hub.deliver.execute(message.id, "whatsapp")
    assert len(hub.connectors["whatsapp"].attempts) == 1 and hub.sleeps == []
    failed = await hub.message(message.id)
    assert failed.status is MessageStatus.FAILED
    assert failed.history[-2].detail == "number does not exist"


async def test_file_missing_from_storage_fails_at_once(hub, people):
    alice, bob, *_ = people
    upload = await hub.uploaded_file(alice)
    message = await hub.send.execute(alice.id, hub.request(alice, await hub.conversation(alice, bob), file_id=upload.id))
    del hub.storage.files[upload.id]
    await hub.deliver.execute(message.id, "whatsapp")
    assert hub.connectors["whatsapp"].attempts == [] and hub.sleeps == []
    failed = await hub.message(message.id)
    assert failed.status is MessageStatus.FAILED
    assert failed.history[-2].detail == "file bytes are missing from storage"


async def test_file_message_is_delivered_when_its_bytes_are_stored(hub, people):
    alice, bob, *_ = people
    upload = await hub.uploaded_file(alice)
    message = await hub.send.execute(alice.id, hub.request(alice, await hub.conversation(alice, bob), file_id=upload.id))
    await hub.deliver.execute(message.id, "whatsapp")
    assert hub.connectors["whatsapp"].recipients_of(message.id) == [bob.id]
    assert (await hub.message(message.id)).status is MessageStatus.DELIVERED


async def test_channel_without_a_connector_fails(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("instagram",))
    deliver = DeliverMessage(hub.uow, hub.clock, {"whatsapp": hub.connectors["whatsapp"]}, hub.storage, hub.deliver.sleep, caches=hub.deliver.caches)
    await deliver.execute(message.id, "instagram")
    failed = await hub.message(message.id)
    assert failed.status is MessageStatus.FAILED
    assert failed.history[-2].detail == "no connector for channel 'instagram'"


# --- the whole way ---------------------------------------------------------------------------


async def test_a_message_travels_from_send_to_delivered_through_the_event_streams(hub, people):
    alice, bob, carol, _ = people
    group = await hub.conversation(alice, bob, carol)
    message = await hub.send_text(alice, group, channels=("all",))
    assert await hub.relay.execute() == 1
    for event in hub.publisher.on(MESSAGE_PROCESSING):
        await hub.route.execute(UUID(event.payload["message_id"]))
    for channel in hub.channels:
        for event in hub.publisher.on(f"{channel}_outgoing"):
            await hub.deliver.execute(UUID(event.payload["message_id"]), event.payload["channel"])
    for connector in hub.connectors.values():
        assert connector.recipients_of(message.id) == [bob.id, carol.id]
    delivered = await hub.message(message.id)
    assert delivered.status is MessageStatus.DELIVERED
    assert statuses(delivered) == [
        ("accepted", None),
        ("routed", None),
        ("delivered", "instagram"),
        ("delivered", "whatsapp"),
        ("delivered", None),
    ]
