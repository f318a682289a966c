"""A member leaves a group: from then on an outsider, who gets nothing more delivered."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from chat4all.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.unit.batch_fixtures import CountingUnitsOfWork


@pytest.fixture
async def people(hub):
    return await hub.users("alice", "bob", "carol")


async def deliver(hub, message) -> None:
    await hub.route.execute(message.id)
    await hub.deliver.execute(message.id, "whatsapp")


async def test_who_left_can_no_longer_see_read_or_send_and_the_others_still_can(hub, people):
    alice, bob, carol = people
    group = await hub.conversation(alice, bob, carol)
    before = await hub.send_text(alice, group)
    await hub.leave.execute(bob.id, group.id)
    assert hub.store.conversations[group.id].members == (alice.id, carol.id)
    assert await hub.view_conversations.list(bob.id, limit=10, offset=0) == ([], 0)
    for attempt in (
        hub.view_conversations.get(bob.id, group.id),
        hub.read.list(bob.id, group.id, limit=10, offset=0),
        hub.read.get(bob.id, before.id),
        hub.send_text(bob, group),
    ):
        with pytest.raises(Forbidden) as raised:
            await attempt
        assert raised.value.code == "not_a_member"
    await hub.send_text(carol, group)
    assert (await hub.read.list(alice.id, group.id, limit=10, offset=0))[1] == 2


async def test_no_delivery_starts_for_who_left_even_with_every_cache_warm(hub, people):
    alice, bob, carol = people
    group = await hub.conversation(alice, bob, carol)
    await deliver(hub, await hub.send_text(alice, group))  # the use cases have now seen the group
    accepted_before = await hub.send_text(alice, group)
    to_bob = await hub.send_text(alice, group, to=bob)
    await hub.leave.execute(bob.id, group.id)
    after = await hub.send_text(carol, group)
    for message in (accepted_before, to_bob, after):
        await deliver(hub, message)
    whatsapp = hub.connectors["whatsapp"]
    assert whatsapp.recipients_of(accepted_before.id) == [carol.id]
    assert whatsapp.recipients_of(to_bob.id) == []
    assert whatsapp.recipients_of(after.id) == [alice.id]


async def test_a_member_cannot_name_who_left_as_the_recipient(hub, people):
    alice, bob, carol = people
    group = await hub.conversation(alice, bob, carol)
    await hub.send_text(alice, group, to=bob)
    await hub.leave.execute(bob.id, group.id)
    with pytest.raises(InvalidInput) as raised:
        await hub.send_text(alice, group, to=bob)
    assert raised.value.code == "invalid_recipient"


async def test_a_private_conversation_cannot_be_left(hub, people):
    alice, bob, _ = people
    pair = await hub.conversation(alice, bob)
    with pytest.raises(Conflict) as raised:
        await hub.leave.execute(alice.id, pair.id)
    assert raised.value.code == "cannot_leave_private"
    assert hub.store.conversations[pair.id].members == (alice.id, bob.id)


async def test_outsiders_and_unknown_conversations(hub, people):
    alice, bob, carol = people
    dave = await hub.user("dave")
    group = await hub.conversation(alice, bob, carol)
    with pytest.raises(Forbidden):
        await hub.leave.execute(dave.id, group.id)
    await hub.leave.execute(carol.id, group.id)
    with pytest.raises(Forbidden):  # leaving twice: by then an outsider
        await hub.leave.execute(carol.id, group.id)
    with pytest.raises(NotFound) as raised:
        await hub.leave.execute(alice.id, hub.ids.new_id())
    assert raised.value.code == "conversation_not_found"


async def test_the_last_member_may_leave_and_the_group_is_kept_for_nobody(hub, people):
    alice, bob, carol = people
    group = await hub.conversation(alice, bob, carol)
    message = await hub.send_text(alice, group)
    for member in people:
        await hub.leave.execute(member.id, group.id)
    assert hub.store.conversations[group.id].members == ()
    assert message.id in hub.store.messages
    with pytest.raises(Forbidden):
        await hub.view_conversations.get(alice.id, group.id)


async def test_a_file_sent_into_the_group_is_no_longer_visible_to_who_left(hub, people):
    alice, bob, carol = people
    group = await hub.conversation(alice, bob, carol)
    upload = await hub.uploaded_file(alice)
    await hub.send.execute(alice.id, hub.request(alice, group, file_id=upload.id))
    assert (await hub.view_upload.execute(bob.id, upload.id)).upload.id == upload.id
    await hub.leave.execute(bob.id, group.id)
    with pytest.raises(Forbidden):
        await hub.view_upload.execute(bob.id, upload.id)


async def test_members_leaving_and_sending_at_once_all_take_effect(hub, people):
    alice, bob, carol = people
    dave, erin = await hub.users("dave", "erin")
    group = await hub.conversation(alice, bob, carol, dave, erin)
    hub.clock.advance()
    await asyncio.gather(
        hub.leave.execute(bob.id, group.id),
        hub.send_text(alice, group),
        hub.leave.execute(carol.id, group.id),
        hub.send_text(erin, group),
        hub.leave.execute(dave.id, group.id),
    )
    stored = hub.store.conversations[group.id]
    assert stored.members == (alice.id, erin.id)
    assert stored.last_activity_at == hub.clock.now()


async def test_a_groups_members_are_looked_up_once_per_batch_since_members_may_leave(hub, people):
    alice, bob, carol = people
    chat = await hub.conversation(alice, bob, carol)
    counted = CountingUnitsOfWork(hub.uow)
    deliver = attrs.evolve(hub.deliver, uow=counted)
    first = [await hub.send_text(alice, chat) for _ in range(3)]
    await deliver.execute_batch([(message.id, "whatsapp") for message in first])
    assert counted.opened == 3 and counted.member_lookups == [[chat.id]]
    second = [await hub.send_text(bob, chat) for _ in range(2)]
    await deliver.execute_batch([(message.id, "whatsapp") for message in second])
    assert counted.member_lookups == [[chat.id], [chat.id]]
    assert hub.connectors["whatsapp"].delivered == [
        *((message.id, user.id) for message in first for user in (bob, carol)),
        *((message.id, user.id) for message in second for user in (alice, carol)),
    ]
