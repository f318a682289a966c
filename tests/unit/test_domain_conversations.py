from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat4all.domain.conversations import (
    MAX_GROUP_MEMBERS,
    MIN_GROUP_MEMBERS,
    Conversation,
    ConversationMetadata,
    ConversationType,
    private_pair_key,
)
from chat4all.domain.errors import Conflict, Forbidden, InvalidInput

NOW = datetime(2025, 1, 1, tzinfo=UTC)
PRIVATE, GROUP = ConversationType.PRIVATE, ConversationType.GROUP


def people(count: int) -> list[UUID]:
    return [UUID(int=number) for number in range(1, count + 1)]


def start(type: ConversationType, members: list[UUID], creator: UUID | None = None) -> Conversation:
    return Conversation.start(
        conversation_id=UUID(int=999),
        type=type,
        members=members,
        creator=members[0] if creator is None else creator,
        metadata=ConversationMetadata(),
        now=NOW,
    )


def test_private_conversation_has_exactly_two_distinct_members():
    conversation = start(PRIVATE, people(2))
    assert conversation.members == tuple(people(2))
    assert conversation.created_at == conversation.last_activity_at == NOW


@pytest.mark.parametrize("count", [1, 3])
def test_private_conversation_with_other_than_two_members_is_rejected(count):
    with pytest.raises(InvalidInput) as raised:
        start(PRIVATE, people(count))
    assert "members" in raised.value.field_errors


def test_private_conversation_with_oneself_is_rejected():
    me = UUID(int=1)
    with pytest.raises(InvalidInput):
        start(PRIVATE, [me, me])


@pytest.mark.parametrize("count", [MIN_GROUP_MEMBERS, 50, MAX_GROUP_MEMBERS])
def test_group_of_3_to_100_members_is_accepted(count):
    assert len(start(GROUP, people(count)).members) == count


@pytest.mark.parametrize("count", [1, 2, MAX_GROUP_MEMBERS + 1])
def test_group_outside_3_to_100_members_is_rejected(count):
    with pytest.raises(InvalidInput):
        start(GROUP, people(count))


@given(members=st.lists(st.integers(1, 20), min_size=2, max_size=10).filter(lambda ids: len(set(ids)) < len(ids)))
def test_duplicate_members_are_rejected_whatever_the_type(members):
    ids = [UUID(int=number) for number in members]
    for type in (PRIVATE, GROUP):
        with pytest.raises(InvalidInput) as raised:
            start(type, ids)
        assert raised.value.field_errors == {"members": ["duplicate user ids"]}


@pytest.mark.parametrize("type, count", [(PRIVATE, 2), (GROUP, 3)])
def test_creator_must_be_a_member(type, count):
    with pytest.raises(Forbidden) as raised:
        start(type, people(count), creator=UUID(int=500))
    assert raised.value.code == "not_a_member"


def test_recipients_are_everyone_but_the_sender_unless_one_is_named():
    alice, bob, carol = people(3)
    group = start(GROUP, [alice, bob, carol])
    assert group.recipients_of(alice, None) == (bob, carol)
    assert group.recipients_of(bob, None) == (alice, carol)
    assert group.recipients_of(alice, carol) == (carol,)


def test_membership_checks():
    alice, bob, stranger = people(3)
    conversation = start(PRIVATE, [alice, bob])
    assert conversation.has_member(bob) and not conversation.has_member(stranger)
    conversation.require_member(alice)
    with pytest.raises(Forbidden):
        conversation.require_member(stranger)


@given(st.permutations(people(2)))
def test_private_pair_key_ignores_order(pair):
    assert private_pair_key(pair) == private_pair_key(people(2))
    assert start(PRIVATE, list(pair)).private_key == private_pair_key(people(2))


def test_groups_have_no_private_key():
    assert start(GROUP, people(3)).private_key is None


def test_metadata_limits():
    ConversationMetadata(name="n" * 128, description="d" * 1024)
    with pytest.raises(InvalidInput):
        ConversationMetadata(name="n" * 129)
    with pytest.raises(InvalidInput):
        ConversationMetadata(description="d" * 1025)


def test_a_member_leaves_a_group_down_to_nobody():
    alice, bob, carol = people(3)
    group = start(GROUP, [alice, bob, carol])
    group.leave(bob)
    assert group.members == (alice, carol) and not group.has_member(bob)
    assert group.recipients_of(alice, None) == (carol,)
    group.leave(alice)
    group.leave(carol)
    assert group.members == ()


def test_only_a_member_can_leave_and_only_once():
    alice, bob, carol, stranger = people(4)
    group = start(GROUP, [alice, bob, carol])
    group.leave(bob)
    for outsider in (stranger, bob):
        with pytest.raises(Forbidden) as raised:
            group.leave(outsider)
        assert raised.value.code == "not_a_member"
    assert group.members == (alice, carol)


def test_a_private_conversation_cannot_be_left():
    alice, bob, stranger = people(3)
    pair = start(PRIVATE, [alice, bob])
    with pytest.raises(Conflict) as raised:
        pair.leave(alice)
    assert raised.value.code == "cannot_leave_private"
    assert pair.members == (alice, bob)
    with pytest.raises(Forbidden):  # an outsider learns only that they are one
        pair.leave(stranger)


def test_a_message_to_a_member_who_left_reaches_nobody():
    alice, bob, carol = people(3)
    group = start(GROUP, [alice, bob, carol])
    group.leave(carol)
    assert group.recipients_of(alice, carol) == ()
    assert group.recipients_of(alice, bob) == (bob,)
