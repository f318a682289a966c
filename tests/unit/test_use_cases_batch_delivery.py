"""Delivering many messages at once: few transactions, one connector call per attempt, the same
outcomes as one at a time."""

from __future__ import annotations

import attrs
import pytest

from chat4all.application.routing import RouteMessage
from chat4all.application.work import DEAD_LETTER_STREAM as DEAD_LETTERS
from chat4all.domain.messages import DeliveryStatus, MessageStatus
from tests.unit.batch_fixtures import (  # noqa: F401 - fixtures
    CountingUnitsOfWork,
    PlannedConnector,
    people,
)


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
