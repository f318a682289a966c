from __future__ import annotations

import pytest

from chat4all.domain.conversations import ConversationMetadata, ConversationType
from chat4all.domain.errors import Forbidden, InvalidInput, NotFound

PRIVATE, GROUP = ConversationType.PRIVATE, ConversationType.GROUP


async def create(hub, caller, type, members, **metadata):
    return await hub.create_conversation.execute(
        caller=caller.id, type=type, members=[member.id for member in members], metadata=ConversationMetadata(**metadata)
    )


async def test_group_is_created_with_its_members_and_metadata(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    created = await create(hub, alice, GROUP, [alice, bob, carol], name="team", description="weekly sync")
    assert created.created
    stored = hub.store.conversations[created.conversation.id]
    assert stored.members == (alice.id, bob.id, carol.id)
    assert stored.metadata == ConversationMetadata("team", "weekly sync")
    assert stored.created_at == hub.clock.now()


async def test_unknown_members_are_named_and_nothing_is_created(hub):
    alice, bob = await hub.users("alice", "bob")
    ghost = hub.ids.new_id()
    with pytest.raises(InvalidInput) as raised:
        await hub.create_conversation.execute(
            caller=alice.id, type=GROUP, members=[alice.id, bob.id, ghost], metadata=ConversationMetadata()
        )
    assert raised.value.code == "unknown_users"
    assert str(ghost) in raised.value.detail
    assert hub.store.conversations == {}


async def test_existing_private_conversation_is_returned_whoever_asks(hub):
    alice, bob = await hub.users("alice", "bob")
    first = await create(hub, alice, PRIVATE, [alice, bob])
    hub.clock.advance()
    again = await create(hub, bob, PRIVATE, [bob, alice])
    assert first.created and not again.created
    assert again.conversation.id == first.conversation.id
    assert len(hub.store.conversations) == 1


async def test_the_same_people_may_have_several_groups(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    first = await create(hub, alice, GROUP, [alice, bob, carol])
    second = await create(hub, alice, GROUP, [alice, bob, carol])
    assert first.conversation.id != second.conversation.id
    assert len(hub.store.conversations) == 2


async def test_caller_must_be_a_member(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    with pytest.raises(Forbidden):
        await create(hub, carol, PRIVATE, [alice, bob])
    with pytest.raises(Forbidden):
        await create(hub, carol, GROUP, [alice, bob, await hub.user("dave")])
    assert hub.store.conversations == {}


@pytest.mark.parametrize("type, count", [(PRIVATE, 3), (GROUP, 2)])
async def test_member_count_rules_apply(hub, type, count):
    users = await hub.users(*[f"user{number}" for number in range(count)])
    with pytest.raises(InvalidInput):
        await create(hub, users[0], type, users)


async def test_members_see_their_conversations_most_recent_first(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    with_bob = await hub.conversation(alice, bob)
    hub.clock.advance()
    with_carol = await hub.conversation(alice, carol)
    hub.clock.advance()
    await hub.send_text(alice, with_bob)
    conversations, total = await hub.view_conversations.list(alice.id, limit=10, offset=0)
    assert total == 2
    assert [conversation.id for conversation in conversations] == [with_bob.id, with_carol.id]
    assert conversations[0].last_activity_at == hub.clock.now()
    page, total = await hub.view_conversations.list(alice.id, limit=1, offset=1)
    assert [conversation.id for conversation in page] == [with_carol.id] and total == 2
    carols, _ = await hub.view_conversations.list(carol.id, limit=10, offset=0)
    assert [conversation.id for conversation in carols] == [with_carol.id]


@pytest.mark.parametrize("limit, offset", [(0, 0), (101, 0), (10, -1), (10, 2**31)])
async def test_a_page_of_conversations_outside_the_bounds_is_refused(hub, limit, offset):
    alice = await hub.user("alice")
    with pytest.raises(InvalidInput):
        await hub.view_conversations.list(alice.id, limit=limit, offset=offset)


async def test_only_members_may_view_a_conversation(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    conversation = await hub.conversation(alice, bob)
    assert (await hub.view_conversations.get(bob.id, conversation.id)).id == conversation.id
    with pytest.raises(Forbidden):
        await hub.view_conversations.get(carol.id, conversation.id)
    with pytest.raises(NotFound):
        await hub.view_conversations.get(alice.id, hub.ids.new_id())
