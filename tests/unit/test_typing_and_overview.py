"""Typing notices (members only, to the others, rate-limited per user and conversation) and the
conversation list a chat client shows (unread counts and last messages, kept on write)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from chat4all.adapters.caching import ExpiringCache
from chat4all.application.reading import MarkConversationRead
from chat4all.application.typing_notices import SendTyping
from chat4all.domain.errors import Forbidden, NotFound
from chat4all.domain.events import EphemeralEvent


class RecordingNotices:
    def __init__(self) -> None:
        self.published: list[tuple[list[UUID], EphemeralEvent]] = []

    async def publish(self, user_ids, event) -> None:
        self.published.append((sorted(user_ids), event))


def typing_of(hub, notices: RecordingNotices) -> SendTyping:
    return SendTyping(hub.uow, hub.clock, notices, interval=timedelta(seconds=2), lasts=timedelta(seconds=5), caches=ExpiringCache)


async def test_typing_goes_to_the_other_members_and_says_until_when(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    group = await hub.conversation(alice, bob, carol)
    notices = RecordingNotices()
    assert await typing_of(hub, notices).execute(alice.id, group.id) is True
    ((to, event),) = notices.published
    assert to == sorted([bob.id, carol.id])
    assert event.data == {
        "conversation_id": str(group.id),
        "user_id": str(alice.id),
        "until": (hub.clock.now() + timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
    }


async def test_only_members_may_type_and_only_in_conversations_that_exist(hub):
    alice, bob, mallory = await hub.users("alice", "bob", "mallory")
    chat = await hub.conversation(alice, bob)
    notices = RecordingNotices()
    typing = typing_of(hub, notices)
    with pytest.raises(Forbidden):
        await typing.execute(mallory.id, chat.id)
    with pytest.raises(NotFound):
        await typing.execute(alice.id, UUID(int=999))
    assert notices.published == []


async def test_typing_is_rate_limited_per_user_and_conversation(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    chat, other = await hub.conversation(alice, bob), await hub.conversation(alice, carol)
    notices = RecordingNotices()
    typing = typing_of(hub, notices)
    assert [await typing.execute(alice.id, chat.id) for _ in range(3)] == [True, False, False]
    assert await typing.execute(alice.id, other.id) is True  # another conversation
    assert await typing.execute(bob.id, chat.id) is True  # another user
    hub.clock.advance(timedelta(seconds=2))
    assert await typing.execute(alice.id, chat.id) is True
    assert len(notices.published) == 4


async def test_the_overview_counts_unread_messages_and_shows_the_last_one_most_recent_first(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    with_bob, with_carol = await hub.conversation(alice, bob), await hub.conversation(alice, carol)
    quiet = await hub.conversation(bob, carol)
    first = await hub.send_text(bob, with_bob, "one")
    hub.clock.advance(timedelta(seconds=1))
    await hub.send_text(carol, with_carol, "two")
    hub.clock.advance(timedelta(seconds=1))
    last = await hub.send_text(bob, with_bob, "three")
    await hub.send_text(alice, with_bob, "mine")  # one's own message is never unread

    summaries, total = await hub.view_conversations.overview(alice.id, limit=10, offset=0)
    assert total == 2
    assert [(s.conversation.id, s.unread_count, s.last_message.payload.text) for s in summaries] == [
        (with_bob.id, 2, "mine"),
        (with_carol.id, 1, "two"),
    ]
    await MarkConversationRead(hub.uow, hub.clock).execute(alice.id, with_bob.id, first.id)
    summaries, _ = await hub.view_conversations.overview(alice.id, limit=10, offset=0)
    assert summaries[0].unread_count == 1
    await MarkConversationRead(hub.uow, hub.clock).execute(alice.id, with_bob.id, last.id)
    (bobs_quiet,) = [s for s in (await hub.view_conversations.overview(bob.id, limit=10, offset=0))[0] if s.conversation.id == quiet.id]
    assert (bobs_quiet.unread_count, bobs_quiet.last_message) == (0, None)
    summaries, _ = await hub.view_conversations.overview(alice.id, limit=10, offset=0)
    assert summaries[0].unread_count == 0


async def test_a_message_detail_carries_a_receipt_per_recipient_for_members_only(hub):
    alice, bob, carol, mallory = await hub.users("alice", "bob", "carol", "mallory")
    group = await hub.conversation(alice, bob, carol)
    message = await hub.send_text(alice, group)
    await MarkConversationRead(hub.uow, hub.clock).execute(bob.id, group.id, message.id)
    shown, receipts, *_ = await hub.read.detail(carol.id, message.id)
    assert shown.id == message.id
    assert {r.recipient_id: r.read_at is not None for r in receipts} == {bob.id: True, carol.id: False}
    with pytest.raises(Forbidden):
        await hub.read.detail(mallory.id, message.id)
