"""Messages whose events were lost are routed again once they have waited too long."""

from __future__ import annotations

from datetime import timedelta

from chat4all.application.topics import MESSAGE_PROCESSING


async def test_only_old_unfinished_messages_are_redriven(hub):
    alice, bob = await hub.users("alice", "bob")
    conversation = await hub.conversation(alice, bob)
    lost = await hub.send_text(alice, conversation, "lost on the way")
    finished = await hub.send_text(alice, conversation, "went through")
    await hub.route.execute(finished.id)
    for channel in finished.channels:
        await hub.deliver.execute(finished.id, channel)
    hub.clock.advance(timedelta(seconds=31))
    recent = await hub.send_text(alice, conversation, "just sent")

    assert await hub.redrive.execute() == 1

    redriven = [event for event in hub.publisher.on(MESSAGE_PROCESSING)]
    assert [event.payload["message_id"] for event in redriven] == [str(lost.id)]
    assert redriven[0].key == str(conversation.id)
    assert recent.id not in {event.payload["message_id"] for event in redriven}


async def test_a_redriven_message_is_delivered_once(hub):
    alice, bob = await hub.users("alice", "bob")
    conversation = await hub.conversation(alice, bob)
    message = await hub.send_text(alice, conversation, channels=("whatsapp",))
    hub.clock.advance(timedelta(minutes=1))
    await hub.redrive.execute()
    await hub.route.execute(message.id)
    await hub.route.execute(message.id)
    await hub.deliver.execute(message.id, "whatsapp")
    await hub.deliver.execute(message.id, "whatsapp")
    stored = await hub.message(message.id)
    assert stored.status.value == "delivered"
    assert hub.connectors["whatsapp"].recipients_of(message.id) == [bob.id]
    hub.clock.advance(timedelta(minutes=1))
    assert await hub.redrive.execute() == 0
