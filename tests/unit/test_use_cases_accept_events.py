"""What accepting a message and starting a conversation write besides themselves: positions,
receipts, unread counts and every member's events, in the same unit of work, and the wake-ups."""

from __future__ import annotations

import pytest

from chat4all.domain.events import EventType
from chat4all.domain.messages import MessageStatus


def logged(hub, user, type: EventType | None = None) -> list:
    return [event for event in hub.store.user_events.get(user.id, []) if type is None or event.type is type]


async def test_a_new_conversation_is_told_to_every_member(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    hub.notifier.notified.clear()
    team = await hub.conversation(alice, bob, carol)
    for member in (alice, bob, carol):
        (event,) = logged(hub, member)
        assert event.seq == 1 and event.type is EventType.CONVERSATION_CREATED
        assert event.data["conversation_id"] == str(team.id) and event.data["members"] == [str(m) for m in team.members]
    assert hub.notifier.notified == [set(team.members)]


async def test_an_existing_private_conversation_is_not_told_again(hub):
    alice, bob = await hub.users("alice", "bob")
    await hub.conversation(alice, bob)
    await hub.conversation(bob, alice)
    assert [event.seq for event in logged(hub, alice)] == [1] and [event.seq for event in logged(hub, bob)] == [1]


async def test_an_accepted_message_is_numbered_and_told_to_every_member_the_sender_included(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    team = await hub.conversation(alice, bob, carol)
    hub.notifier.notified.clear()
    first = await hub.send_text(alice, team, "one")
    second = await hub.send_text(carol, team, "two", to=bob)

    assert [hub.store.positions[message.id] for message in (first, second)] == [1, 2]
    assert hub.store.message_counts[team.id] == 2 and hub.store.last_messages[team.id] == second.id
    assert hub.store.conversations[team.id].last_activity_at == second.created_at
    for member in (alice, bob, carol):
        created = logged(hub, member, EventType.MESSAGE_CREATED)
        assert [(event.seq, event.data["message_id"]) for event in created] == [(2, str(first.id)), (3, str(second.id))]
        assert created[0].data["payload"] == {"type": "text", "text": "one"} and created[0].data["status"] == "accepted"
    assert hub.notifier.notified == [set(team.members), set(team.members)]


async def test_each_recipient_gets_a_receipt_and_an_unread_message(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    team = await hub.conversation(alice, bob, carol)
    to_all = await hub.send_text(alice, team)
    to_bob = await hub.send_text(carol, team, to=bob)

    assert {recipient for message_id, recipient in hub.store.receipts if message_id == to_all.id} == {bob.id, carol.id}
    assert {recipient for message_id, recipient in hub.store.receipts if message_id == to_bob.id} == {bob.id}
    unread = {member.id: hub.store.horizons[team.id, member.id].unread_count for member in (bob, carol)}
    assert unread == {bob.id: 2, carol.id: 1} and (team.id, alice.id) not in hub.store.horizons


async def test_the_same_message_id_again_writes_nothing_more(hub):
    alice, bob = await hub.users("alice", "bob")
    chat = await hub.conversation(alice, bob)
    request = hub.request(alice, chat, "once")
    await hub.send.execute(alice.id, request)
    before = (dict(hub.store.event_counters), dict(hub.store.message_counts), dict(hub.store.horizons))
    again = await hub.send.execute(alice.id, request)
    assert again.status is MessageStatus.ACCEPTED
    assert (hub.store.event_counters, hub.store.message_counts, hub.store.horizons) == before


async def test_a_message_that_fails_to_commit_leaves_no_position_receipt_or_event(hub, monkeypatch):
    alice, bob = await hub.users("alice", "bob")
    chat = await hub.conversation(alice, bob)
    counters = dict(hub.store.event_counters)

    async def broken(self, topic, key, payload):
        raise ConnectionError("database went away")

    monkeypatch.setattr("tests.fakes.outbox.InMemoryOutbox.add", broken)
    hub.notifier.notified.clear()
    with pytest.raises(ConnectionError):
        await hub.send_text(alice, chat)
    assert hub.store.event_counters == counters and hub.store.message_counts == {}
    assert hub.store.receipts == {} and hub.store.horizons == {} and hub.notifier.notified == []
