"""Routing many messages at once: one transaction, events published in the order asked, and the
channels this process has connectors for delivered on route without holding up the others."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from chat4all.application.ports import NoMetrics
from chat4all.application.routing import DeliverOnRoute, PublishEveryChannel, RouteMessage
from chat4all.domain.messages import DeliveryStatus, MessageStatus
from tests.unit.batch_fixtures import (  # noqa: F401 - fixtures
    CountingUnitsOfWork,
    PlannedConnector,
    people,
)


class FailingCommits(CountingUnitsOfWork):
    """Commits fail from the `fail_from`-th on (counting from 1), until `fail_from` is set to None."""

    def __init__(self, inner, fail_from: int | None) -> None:
        super().__init__(inner)
        self.fail_from = fail_from
        self.commits = 0

    def __call__(self):
        uow = super().__call__()
        committed = uow.commit

        async def commit():
            self.commits += 1
            if self.fail_from is not None and self.commits >= self.fail_from:
                raise ConnectionError("database went away")
            await committed()

        uow.commit = commit
        return uow


class CountingMetrics(NoMetrics):
    def __init__(self) -> None:
        self.routed = 0

    def message_routed(self) -> None:
        self.routed += 1


async def test_routing_a_batch_takes_one_transaction_and_publishes_in_the_order_asked(hub, people):
    alice, bob, carol, _ = people
    first_chat, second_chat = await hub.conversation(alice, bob), await hub.conversation(alice, carol)
    one = await hub.send_text(alice, first_chat, channels=("whatsapp", "instagram"))
    two = await hub.send_text(alice, second_chat)
    three = await hub.send_text(bob, first_chat)
    counted = CountingUnitsOfWork(hub.uow)
    route = RouteMessage(counted, hub.clock, hub.publisher)
    await route.execute_batch([one.id, two.id, hub.ids.new_id(), three.id, one.id])
    assert counted.opened == 1
    assert [(event.topic, event.key, event.payload["message_id"]) for event in hub.publisher.events] == [
        ("whatsapp_outgoing", str(first_chat.id), str(one.id)),
        ("instagram_outgoing", str(first_chat.id), str(one.id)),
        ("whatsapp_outgoing", str(second_chat.id), str(two.id)),
        ("whatsapp_outgoing", str(first_chat.id), str(three.id)),
    ]
    for message in (one, two, three):
        routed = await hub.message(message.id)
        assert [event.status for event in routed.history] == ["accepted", "routed"]


async def test_rerouting_a_batch_records_nothing_new_and_republishes_pending_channels(hub, people):
    alice, bob, *_ = people
    chat = await hub.conversation(alice, bob)
    one, two = await hub.send_text(alice, chat), await hub.send_text(alice, chat)
    await hub.route.execute_batch([one.id, two.id])
    await hub.deliver.execute(one.id, "whatsapp")
    hub.publisher.events.clear()
    await hub.route.execute_batch([one.id, two.id])
    assert [event.payload["message_id"] for event in hub.publisher.events] == [str(two.id)]
    assert [event.status for event in (await hub.message(two.id)).history] == ["accepted", "routed"]


async def test_routing_delivers_the_channels_it_has_connectors_for_and_publishes_the_rest(hub, people):
    alice, bob, carol, _ = people
    chat = await hub.conversation(alice, bob, carol)
    both = await hub.send_text(alice, chat, channels=("whatsapp", "instagram"))
    whatsapp_only = await hub.send_text(bob, chat)
    counted = CountingUnitsOfWork(hub.uow)
    whatsapp_here = attrs.evolve(hub.deliver, uow=counted, connectors={"whatsapp": hub.connectors["whatsapp"]})
    route = RouteMessage(counted, hub.clock, hub.publisher, policy=DeliverOnRoute(whatsapp_here))
    await route.execute_batch([both.id, whatsapp_only.id])
    # One read, the members (not known yet), one write of routing and outcomes together: the
    # message left for another worker (instagram) is marked routed by the write of its first outcome.
    assert counted.opened == 3
    assert hub.connectors["whatsapp"].delivered == [
        (both.id, bob.id), (both.id, carol.id), (whatsapp_only.id, alice.id), (whatsapp_only.id, carol.id)
    ]
    assert [(event.topic, event.payload["message_id"]) for event in hub.publisher.events] == [
        ("instagram_outgoing", str(both.id))
    ]
    assert (await hub.message(whatsapp_only.id)).status is MessageStatus.DELIVERED
    waiting = await hub.message(both.id)
    assert waiting.status is MessageStatus.ROUTED
    assert waiting.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.PENDING}


async def test_a_redelivered_routing_request_delivered_on_route_does_nothing_more(hub, people):
    alice, bob, *_ = people
    chat = await hub.conversation(alice, bob)
    message = await hub.send_text(alice, chat, channels=("whatsapp", "instagram"))
    route = RouteMessage(hub.uow, hub.clock, hub.publisher, policy=DeliverOnRoute(hub.deliver))
    await route.execute_batch([message.id])
    delivered = await hub.message(message.id)
    assert delivered.status is MessageStatus.DELIVERED
    assert [(event.status, event.channel) for event in delivered.history] == [
        ("accepted", None), ("routed", None), ("delivered", "whatsapp"), ("delivered", "instagram"), ("delivered", None)
    ]
    await route.execute_batch([message.id])
    assert hub.publisher.events == []
    assert len(hub.connectors["whatsapp"].attempts) == len(hub.connectors["instagram"].attempts) == 1
    assert (await hub.message(message.id)).history == delivered.history


async def test_a_failure_while_delivering_on_route_is_redone_by_the_retried_batch(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    failing = FailingCommits(hub.uow, fail_from=1)  # the one write, of routing and outcomes, fails
    metrics = CountingMetrics()
    deliver = attrs.evolve(hub.deliver, uow=failing, metrics=metrics)
    route = RouteMessage(failing, hub.clock, hub.publisher, metrics, policy=DeliverOnRoute(deliver))
    with pytest.raises(ConnectionError):
        await route.execute_batch([message.id])
    assert (await hub.message(message.id)).status is MessageStatus.ACCEPTED
    failing.fail_from = None
    await route.execute_batch([message.id])
    delivered = await hub.message(message.id)
    assert [event.status for event in delivered.history] == ["accepted", "routed", "delivered", "delivered"]
    assert hub.publisher.events == []
    assert metrics.routed == 1, "the write that failed counted the message as routed"


async def test_a_message_with_no_channel_delivered_here_is_marked_routed_before_its_events_leave(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("instagram",))
    whatsapp_here = attrs.evolve(hub.deliver, connectors={"whatsapp": hub.connectors["whatsapp"]})
    await RouteMessage(hub.uow, hub.clock, hub.publisher, policy=DeliverOnRoute(whatsapp_here)).execute_batch([message.id])
    routed = await hub.message(message.id)
    assert [event.status for event in routed.history] == ["accepted", "routed"]
    assert [event.topic for event in hub.publisher.events] == ["instagram_outgoing"]


@pytest.mark.parametrize("deliver_on_route", [True, False])
async def test_each_message_counts_as_routed_once(hub, people, deliver_on_route: bool):
    alice, bob, *_ = people
    chat = await hub.conversation(alice, bob)
    messages = [await hub.send_text(alice, chat, channels=("whatsapp", "instagram")) for _ in range(3)]
    metrics = CountingMetrics()
    deliver = attrs.evolve(hub.deliver, metrics=metrics)
    route = RouteMessage(
        hub.uow, hub.clock, hub.publisher, metrics, policy=DeliverOnRoute(deliver) if deliver_on_route else PublishEveryChannel()
    )
    await route.execute_batch([message.id for message in messages])
    await deliver.execute_batch([(message.id, channel) for message in messages for channel in ("whatsapp", "instagram")])
    await route.execute_batch([message.id for message in messages])
    assert metrics.routed == 3
    assert {(await hub.message(message.id)).status for message in messages} == {MessageStatus.DELIVERED}


async def test_a_slow_or_retried_provider_does_not_hold_up_the_other_channels_calls(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp", "instagram"))
    answering = asyncio.Event()

    class SlowConnector(PlannedConnector):
        async def deliver_many(self, sends):
            await answering.wait()
            return await super().deliver_many(sends)

    slow = SlowConnector("whatsapp", transient={bob.id: 1})
    healthy = PlannedConnector("instagram")
    deliver = attrs.evolve(hub.deliver, connectors={"whatsapp": slow, "instagram": healthy})
    delivering = asyncio.create_task(deliver.execute_batch([(message.id, "whatsapp"), (message.id, "instagram")]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert healthy.delivered == [(message.id, bob.id)], "instagram's call waited for whatsapp's provider"
    answering.set()
    await asyncio.wait_for(delivering, timeout=5)
    assert slow.delivered == [(message.id, bob.id)] and len(slow.calls) == 2  # one retry
    assert (await hub.message(message.id)).status is MessageStatus.DELIVERED


async def test_a_provider_failing_on_route_is_retried_through_its_channel_topic_and_holds_nothing_up(hub, people):
    alice, bob, *_ = people
    chat = await hub.conversation(alice, bob)
    both = await hub.send_text(alice, chat, channels=("whatsapp", "instagram"))
    whatsapp_only = await hub.send_text(alice, chat)
    flaky = PlannedConnector("whatsapp", transient={bob.id: 2})  # bob fails once per message
    metrics = CountingMetrics()
    deliver = attrs.evolve(hub.deliver, connectors={"whatsapp": flaky, "instagram": hub.connectors["instagram"]}, metrics=metrics)
    route = RouteMessage(hub.uow, hub.clock, hub.publisher, metrics, policy=DeliverOnRoute(deliver))

    await route.execute_batch([both.id, whatsapp_only.id])

    assert hub.sleeps == [], "routing waited for a provider's back-off"
    assert flaky.calls == [[both.id, whatsapp_only.id]]  # one attempt on route
    assert [(event.topic, event.payload["message_id"]) for event in hub.publisher.events] == [
        ("whatsapp_outgoing", str(both.id)),
        ("whatsapp_outgoing", str(whatsapp_only.id)),
    ]
    handed_off = await hub.message(both.id)
    assert handed_off.status is MessageStatus.ROUTED
    assert handed_off.deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.DELIVERED}
    assert [event.status for event in (await hub.message(whatsapp_only.id)).history] == ["accepted", "routed"]
    assert metrics.routed == 2

    await deliver.execute_batch([(both.id, "whatsapp"), (whatsapp_only.id, "whatsapp")])  # the channel topic's turn
    assert {(await hub.message(message.id)).status for message in (both, whatsapp_only)} == {MessageStatus.DELIVERED}
    assert metrics.routed == 2
