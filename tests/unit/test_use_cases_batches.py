"""Routing and delivering many messages at once: few transactions, one connector call per attempt,
the same outcomes as one at a time."""

from __future__ import annotations

import asyncio
from uuid import UUID

import attrs
import pytest

from chat4all.application.ports import NoMetrics
from chat4all.application.routing import DeliverOnRoute, PublishEveryChannel, RouteMessage
from chat4all.application.work import DEAD_LETTER_STREAM as DEAD_LETTERS
from chat4all.domain.errors import PermanentDeliveryFailure, TransientDeliveryFailure
from chat4all.domain.messages import DeliveryStatus, MessageStatus
from tests.fakes import RecordingConnector


class CountingUnitsOfWork:
    """The hub's unit of work factory, counting the units of work and the member lookups."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.opened = 0
        self.member_lookups: list[list[UUID]] = []

    def __call__(self):
        self.opened += 1
        uow = self.inner()
        lookups = self.member_lookups
        get_many = uow.conversations.get_many

        async def counted(conversation_ids):
            lookups.append(list(conversation_ids))
            return await get_many(conversation_ids)

        uow.conversations.get_many = counted
        return uow


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


class PlannedConnector(RecordingConnector):
    """Fails the first `transient[recipient]` attempts to that recipient; `permanent` recipients always."""

    def __init__(self, name: str, transient: dict[UUID, int] | None = None, permanent: set[UUID] | None = None):
        super().__init__(name)
        self.transient = dict(transient or {})
        self.permanent = set(permanent or ())
        self.calls: list[list[UUID]] = []

    async def deliver_many(self, sends):
        self.calls.append([message.id for message, _ in sends])
        return await super().deliver_many(sends)

    async def deliver(self, message, recipient_id):
        self.attempts.append((message.id, recipient_id))
        if recipient_id in self.permanent:
            raise PermanentDeliveryFailure(f"{recipient_id} does not exist")
        if self.transient.get(recipient_id, 0) > 0:
            self.transient[recipient_id] -= 1
            raise TransientDeliveryFailure("connection reset")
        self.delivered.append((message.id, recipient_id))


@pytest.fixture
async def people(hub):
    return await hub.users("alice", "bob", "carol", "dave")


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


async def test_a_delivery_batch_calls_the_connector_once_per_attempt_and_records_every_outcome(hub, people):
    alice, bob, carol, dave = people
    group = await hub.conversation(alice, bob, carol, dave)
    without_carol = await hub.conversation(alice, bob, dave)
    private = await hub.conversation(alice, bob)
    connector = PlannedConnector("whatsapp", transient={carol.id: 2}, permanent={dave.id})
    deliver = attrs.evolve(hub.deliver, connectors={"whatsapp": connector}, dead_letters=hub.publisher)
    plain = await hub.send_text(alice, private)
    flaky = await hub.send_text(alice, group, to=carol)
    doomed = await hub.send_text(alice, without_carol)  # bob gets it, then dave fails for good
    later = await hub.send_text(bob, private)

    await deliver.execute_batch([(message.id, "whatsapp") for message in (plain, flaky, doomed, later)])

    assert connector.calls == [[plain.id, flaky.id, doomed.id, later.id], [flaky.id], [flaky.id]]
    assert hub.sleeps == [hub.retry.delay_before(2), hub.retry.delay_before(3)]
    assert connector.delivered == [(plain.id, bob.id), (doomed.id, bob.id), (later.id, alice.id), (flaky.id, carol.id)]
    assert {message.id: (await hub.message(message.id)).status for message in (plain, flaky, doomed, later)} == {
        plain.id: MessageStatus.DELIVERED,
        flaky.id: MessageStatus.DELIVERED,
        doomed.id: MessageStatus.FAILED,
        later.id: MessageStatus.DELIVERED,
    }
    failed = await hub.message(doomed.id)
    assert failed.history[-2].detail == f"{dave.id} does not exist"
    [letter] = hub.publisher.on(DEAD_LETTERS)
    assert letter.payload == {
        "message_id": str(doomed.id),
        "channel": "whatsapp",
        "reason": f"{dave.id} does not exist",
        "attempts": 1,
    }


async def test_a_spent_retry_budget_fails_only_the_messages_that_kept_failing(hub, people):
    alice, bob, carol, _ = people
    chat = await hub.conversation(alice, bob, carol)
    connector = PlannedConnector("whatsapp", transient={carol.id: 99})
    deliver = attrs.evolve(hub.deliver, connectors={"whatsapp": connector})
    to_bob = await hub.send_text(alice, chat, to=bob)
    to_carol = await hub.send_text(alice, chat, to=carol)
    await deliver.execute_batch([(to_carol.id, "whatsapp"), (to_bob.id, "whatsapp")])
    assert len(connector.calls) == hub.retry.attempts
    assert (await hub.message(to_bob.id)).status is MessageStatus.DELIVERED
    failed = await hub.message(to_carol.id)
    assert failed.status is MessageStatus.FAILED
    assert failed.history[-2].detail == f"gave up after {hub.retry.attempts} attempts: connection reset"


async def test_a_delivery_batch_reads_once_writes_once_and_looks_private_members_up_once(hub, people):
    alice, bob, *_ = people
    chat = await hub.conversation(alice, bob)
    counted = CountingUnitsOfWork(hub.uow)
    deliver = attrs.evolve(hub.deliver, uow=counted)
    first = [await hub.send_text(alice, chat) for _ in range(3)]
    await deliver.execute_batch([(message.id, "whatsapp") for message in first])
    assert counted.opened == 3  # the read, the conversation's members (not known yet), the write
    assert counted.member_lookups == [[chat.id]]
    second = [await hub.send_text(bob, chat) for _ in range(2)]
    await deliver.execute_batch([(message.id, "whatsapp") for message in second])
    assert counted.member_lookups == [[chat.id]], "members of a known private conversation were read again"
    assert counted.opened == 3 + 2
    assert hub.connectors["whatsapp"].delivered == [
        *((message.id, bob.id) for message in first),
        *((message.id, alice.id) for message in second),
    ]


async def test_a_redelivered_batch_delivers_nothing_and_writes_nothing(hub, people):
    alice, bob, *_ = people
    chat = await hub.conversation(alice, bob)
    messages = [await hub.send_text(alice, chat) for _ in range(2)]
    requests = [(message.id, "whatsapp") for message in messages]
    await hub.deliver.execute_batch(requests)
    counted = CountingUnitsOfWork(hub.uow)
    await attrs.evolve(hub.deliver, uow=counted).execute_batch([*requests, *requests])
    assert counted.opened == 1
    assert len(hub.connectors["whatsapp"].attempts) == 2


async def test_both_channels_of_a_message_in_one_batch_finish_it(hub, people):
    alice, bob, *_ = people
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp", "instagram"))
    await hub.deliver.execute_batch([(message.id, "instagram"), (message.id, "whatsapp"), (hub.ids.new_id(), "whatsapp")])
    delivered = await hub.message(message.id)
    assert delivered.status is MessageStatus.DELIVERED
    assert delivered.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.DELIVERED}
    assert [(event.status, event.channel) for event in delivered.history] == [
        ("accepted", None),
        ("routed", None),
        ("delivered", "instagram"),
        ("delivered", "whatsapp"),
        ("delivered", None),
    ]


async def test_an_empty_batch_does_nothing(hub):
    counted = CountingUnitsOfWork(hub.uow)
    await RouteMessage(counted, hub.clock, hub.publisher).execute_batch([])
    await attrs.evolve(hub.deliver, uow=counted).execute_batch([])
    assert counted.opened == 0 and hub.publisher.events == []


async def test_a_failed_write_records_nothing_and_the_retried_batch_finishes(hub, people):
    alice, bob, *_ = people
    chat = await hub.conversation(alice, bob)
    messages = [await hub.send_text(alice, chat) for _ in range(2)]
    requests = [(message.id, "whatsapp") for message in messages]

    class FailingFirstCommit(CountingUnitsOfWork):
        """Only the write commits: reading the batch and its members never does."""

        failed = False

        def __call__(self):
            uow = super().__call__()

            async def commit():
                if not self.failed:
                    self.failed = True
                    raise ConnectionError("database went away")
                await committed()

            committed, uow.commit = uow.commit, commit
            return uow

    failing = FailingFirstCommit(hub.uow)
    deliver = attrs.evolve(hub.deliver, uow=failing)
    with pytest.raises(ConnectionError):
        await deliver.execute_batch(requests)
    assert failing.failed
    assert [(await hub.message(message.id)).status for message in messages] == [MessageStatus.ACCEPTED] * 2
    await hub.deliver.execute_batch(requests)
    assert [(await hub.message(message.id)).status for message in messages] == [MessageStatus.DELIVERED] * 2
    # The recording connector has no ledger: it is the mock connector's ledger that keeps a
    # retried batch from sending twice (tests/integration/test_sql_ledger.py).
    assert len(hub.connectors["whatsapp"].delivered) == 4


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
