from __future__ import annotations

import pytest

from chat4all.application.relay import RelayOutbox
from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING


@pytest.fixture
async def chat(hub):
    alice, bob = await hub.users("alice", "bob")
    return alice, await hub.conversation(alice, bob)


async def test_relay_publishes_committed_events_in_order_and_only_once(hub, chat):
    alice, conversation = chat
    sent = [await hub.send_text(alice, conversation, f"message {number}") for number in range(3)]
    assert await hub.relay.execute() == 3
    assert [event.payload["message_id"] for event in hub.publisher.on(MESSAGE_PROCESSING)] == [
        str(message.id) for message in sent
    ]
    assert {event.key for event in hub.publisher.events} == {str(conversation.id)}
    assert hub.store.outbox_events() == []
    assert await hub.relay.execute() == 0
    assert len(hub.publisher.events) == 3


async def test_relay_moves_at_most_a_batch_at_a_time(hub, chat):
    alice, conversation = chat
    for _ in range(5):
        await hub.send_text(alice, conversation)
    relay = RelayOutbox(hub.relay.outbox, hub.publisher, batch_size=2)
    assert [await relay.execute() for _ in range(4)] == [2, 2, 1, 0]
    assert len(hub.publisher.events) == 5


async def test_failed_publish_leaves_the_events_for_the_next_attempt(hub, chat):
    alice, conversation = chat
    message = await hub.send_text(alice, conversation)
    hub.publisher.fail_next()
    with pytest.raises(ConnectionError):
        await hub.relay.execute()
    assert len(hub.store.outbox_events()) == 1 and hub.publisher.events == []
    assert await hub.relay.execute() == 1
    assert [event.payload for event in hub.publisher.events] == [{"message_id": str(message.id)}]


async def test_rejected_sends_leave_nothing_to_relay(hub, chat):
    alice, conversation = chat
    with pytest.raises(Exception):
        await hub.send_text(alice, conversation, "")
    assert await hub.relay.execute() == 0
