"""Failed deliveries reach the dead-letter topic; mock providers send each key once."""

from __future__ import annotations

import logging
from uuid import uuid4

import attrs

from chat4all.adapters.connectors import MockConnector
from chat4all.application.delivery import DeliverMessage
from chat4all.application.work import DEAD_LETTER_STREAM as DEAD_LETTERS
from chat4all.domain.errors import TransientDeliveryFailure


def with_dead_letters(hub) -> DeliverMessage:
    return attrs.evolve(hub.deliver, dead_letters=hub.publisher)


async def test_spent_retries_publish_a_dead_letter_with_the_reason(hub):
    alice, bob = await hub.users("alice", "bob")
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp",))
    hub.connectors["whatsapp"].fail_transiently(hub.retry.attempts)
    await with_dead_letters(hub).execute(message.id, "whatsapp")
    [letter] = hub.publisher.on(DEAD_LETTERS)
    assert letter.key == str(message.conversation_id)
    assert letter.payload["message_id"] == str(message.id) and letter.payload["channel"] == "whatsapp"
    assert letter.payload["attempts"] == hub.retry.attempts
    assert letter.payload["reason"].startswith(f"gave up after {hub.retry.attempts} attempts")


async def test_delivered_and_redelivered_requests_publish_no_dead_letter(hub):
    alice, bob = await hub.users("alice", "bob")
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp",))
    hub.connectors["whatsapp"].fail_permanently("number does not exist")
    deliver = with_dead_letters(hub)
    await deliver.execute(message.id, "whatsapp")
    await deliver.execute(message.id, "whatsapp")
    assert [letter.payload["reason"] for letter in hub.publisher.on(DEAD_LETTERS)] == ["number does not exist"]


class SetLedger:
    def __init__(self):
        self.keys = set()

    async def send_once(self, channel, message_id, recipient_id, send) -> bool:
        key = (channel, message_id, recipient_id)
        if key in self.keys:
            return False
        send()
        self.keys.add(key)
        return True

    async def send_new(self, channel, keys, send) -> list:
        new = [key for key in dict.fromkeys(keys) if (channel, *key) not in self.keys]
        for key in new:
            send(key)
            self.keys.add((channel, *key))
        return new


@attrs.define
class FakeMessage:
    id: object


async def test_mock_connector_logs_each_key_once(caplog):
    connector = MockConnector("whatsapp", "WhatsApp", ledger=SetLedger())
    message, recipient = FakeMessage(uuid4()), uuid4()
    with caplog.at_level(logging.INFO, logger="chat4all.connectors"):
        await connector.deliver(message, recipient)
        await connector.deliver(message, recipient)
        await connector.deliver(message, uuid4())
    lines = [record.getMessage() for record in caplog.records]
    assert lines.count(f"Mensagem {message.id} enviada para o usuário {recipient} no WhatsApp") == 1
    assert len(lines) == 2


async def test_injected_failures_do_not_consume_the_key():
    ledger = SetLedger()
    always_failing = MockConnector("instagram", "Instagram", ledger=ledger, failure_rate=1.0)
    message, recipient = FakeMessage(uuid4()), uuid4()
    try:
        await always_failing.deliver(message, recipient)
    except TransientDeliveryFailure:
        pass
    else:
        raise AssertionError("a failure rate of 1 must fail every attempt")
    assert ledger.keys == set()


async def test_a_dead_letter_whose_publish_failed_is_published_on_the_retry(hub):
    alice, bob = await hub.users("alice", "bob")
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp",))
    hub.connectors["whatsapp"].fail_permanently("number does not exist")
    hub.publisher.fail_next(1)
    deliver = with_dead_letters(hub)
    try:
        await deliver.execute(message.id, "whatsapp")
    except Exception:
        pass  # the worker retries the event
    else:
        raise AssertionError("the failed publish must surface so the event is retried")
    await deliver.execute(message.id, "whatsapp")
    assert [letter.payload["message_id"] for letter in hub.publisher.on(DEAD_LETTERS)] == [str(message.id)]
    assert (await hub.message(message.id)).status.value == "failed"


async def test_mock_connector_batch_logs_each_key_once_and_stops_a_message_at_its_first_failure(caplog):
    ledger = SetLedger()
    rejected = uuid4()
    connector = MockConnector("whatsapp", "WhatsApp", ledger=ledger, always_fail_recipients=[rejected])
    first, second, third = FakeMessage(uuid4()), FakeMessage(uuid4()), FakeMessage(uuid4())
    a, b = uuid4(), uuid4()
    with caplog.at_level(logging.INFO, logger="chat4all.connectors"):
        await connector.deliver(first, a)
        results = await connector.deliver_many([(first, [a, b]), (second, [b, rejected, a]), (third, [])])
        again = await connector.deliver_many([(first, [a, b])])
    assert [(result.reached, type(result.failure).__name__) for result in results] == [
        (2, "NoneType"),
        (1, "TransientDeliveryFailure"),
        (0, "NoneType"),
    ]
    assert [(result.reached, result.failure) for result in again] == [(2, None)]
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        f"Mensagem {first.id} enviada para o usuário {a} no WhatsApp",
        f"Mensagem {first.id} enviada para o usuário {b} no WhatsApp",
        f"Mensagem {second.id} enviada para o usuário {b} no WhatsApp",
    ]
    assert ("whatsapp", second.id, a) not in ledger.keys  # after the failure: not attempted


async def test_mock_connector_batch_injected_failures_do_not_consume_keys():
    ledger = SetLedger()
    always_failing = MockConnector("instagram", "Instagram", ledger=ledger, failure_rate=1.0)
    results = await always_failing.deliver_many([(FakeMessage(uuid4()), [uuid4()]), (FakeMessage(uuid4()), [uuid4()])])
    assert all(result.reached == 0 and isinstance(result.failure, TransientDeliveryFailure) for result in results)
    assert ledger.keys == set()
