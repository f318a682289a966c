"""Messages whose events were lost are routed again once they have waited too long."""

from __future__ import annotations

from datetime import timedelta

import attrs

from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING


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


async def test_at_start_up_every_unfinished_message_is_redriven_at_once_in_acceptance_order(hub):
    alice, bob = await hub.users("alice", "bob")
    conversation = await hub.conversation(alice, bob)
    finished = await hub.send_text(alice, conversation, "went through")
    await hub.route.execute(finished.id)
    await hub.deliver.execute(finished.id, "whatsapp")
    unfinished = []
    for index in range(7):  # more than a page
        unfinished.append(await hub.send_text(alice, conversation, f"in flight {index}"))
        if index % 3 == 0:
            hub.clock.advance(timedelta(milliseconds=1))  # several share an acceptance time
    routed = unfinished[1]
    await hub.route.execute(routed.id)  # routed, its channel still pending
    hub.publisher.events.clear()
    startup = attrs.evolve(hub.redrive, batch=3)

    assert await startup.execute_all() == 7

    redriven = [event.payload["message_id"] for event in hub.publisher.on(MESSAGE_PROCESSING)]
    assert redriven == [str(message.id) for message in sorted(unfinished, key=lambda m: (m.created_at, m.id))]
