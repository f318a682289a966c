"""Who gets which event, and what it says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.errors import Forbidden
from chat4all.domain.event_data import (
    conversation_created,
    conversation_read,
    message_created,
    message_status,
    typing,
)
from chat4all.domain.events import EventType
from chat4all.domain.messages import FilePayload, Message, MessageDraft, Priority, TextPayload
from chat4all.domain.receipts import MessageRef, ReadHorizon, Receipt

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
ALICE, BOB, CAROL, MALLORY = (UUID(int=number) for number in (1, 2, 3, 66))


def group() -> Conversation:
    return Conversation.start(
        conversation_id=UUID(int=100),
        type=ConversationType.GROUP,
        members=[ALICE, BOB, CAROL],
        creator=ALICE,
        metadata=ConversationMetadata(name="team"),
        now=NOW,
    )


def message(to: UUID | None = None, payload=None) -> Message:
    draft = MessageDraft(
        UUID(int=500), UUID(int=100), ALICE, to, ("whatsapp",), payload or TextPayload("hello"), Priority.HIGH
    )
    return Message.accept(draft, NOW)


def test_a_new_message_goes_to_every_member_with_the_sender_as_get_shows_it():
    events = message_created(message(to=BOB), group())
    assert [event.user_id for event in events] == [ALICE, BOB, CAROL]
    data = events[0].data
    assert {event.type for event in events} == {EventType.MESSAGE_CREATED}
    assert data["message_id"] == str(UUID(int=500)) and data["from"] == str(ALICE) and data["to"] == str(BOB)
    assert data["payload"] == {"type": "text", "text": "hello"}
    assert data["status"] == "accepted" and data["deliveries"] == {"whatsapp": "pending"}
    assert data["created_at"] == "2025-01-01T12:00:00Z" and data["history"][0]["status"] == "accepted"


def test_a_message_sent_with_failover_carries_its_failover_channels_as_get_shows_it():
    draft = MessageDraft(
        UUID(int=501), UUID(int=100), ALICE, None, ("whatsapp",), TextPayload("hi"), Priority.NORMAL,
        failover=("instagram", "telegram"),
    )
    data = message_created(Message.accept(draft, NOW), group())[0].data
    assert data["failover"] == ["instagram", "telegram"]
    assert message_created(message(), group())[0].data["failover"] == []


def test_a_file_message_carries_the_file_as_get_shows_it():
    file = FilePayload(UUID(int=9), "a.png", 10, "image/png", "0" * 64)
    data = message_created(message(payload=file), group())[0].data
    assert data["payload"] == {
        "type": "file",
        "file_id": str(UUID(int=9)),
        "filename": "a.png",
        "file_size": 10,
        "content_type": "image/png",
        "checksum": "0" * 64,
    }


def test_a_status_change_goes_to_the_sender_only_with_what_changed():
    sent = message()
    sent.record_delivery("whatsapp", delivered=True, now=NOW + timedelta(seconds=1))
    (event,) = message_status(sent, NOW + timedelta(seconds=1), channel="whatsapp")
    assert event.user_id == ALICE and event.type is EventType.MESSAGE_STATUS
    assert event.data["status"] == "delivered"
    assert event.data["channel"] == {"name": "whatsapp", "status": "delivered", "detail": None}
    receipt = Receipt(sent.id, BOB).read(NOW + timedelta(seconds=2))
    (event,) = message_status(sent, NOW + timedelta(seconds=2), receipt=receipt)
    assert event.data["receipt"] == {
        "recipient_id": str(BOB),
        "delivered_at": "2025-01-01T12:00:02Z",
        "read_at": "2025-01-01T12:00:02Z",
    }
    with pytest.raises(ValueError):
        message_status(sent, NOW, channel="whatsapp", receipt=receipt)


def test_a_new_conversation_and_a_read_go_to_every_member():
    conversation = group()
    assert [event.user_id for event in conversation_created(conversation)] == [ALICE, BOB, CAROL]
    horizon = ReadHorizon(conversation.id, BOB, unread_count=1).advance(MessageRef(UUID(int=500), 7), NOW, [7])
    events = conversation_read(conversation, horizon)
    assert [event.user_id for event in events] == [ALICE, BOB, CAROL]
    assert events[0].data == {
        "conversation_id": str(conversation.id),
        "reader_id": str(BOB),
        "up_to": str(UUID(int=500)),
        "position": 7,
        "at": "2025-01-01T12:00:00Z",
    }
    with pytest.raises(ValueError):
        conversation_read(conversation, ReadHorizon(conversation.id, BOB))


def test_typing_goes_live_to_the_other_members_and_only_a_member_may_type():
    notice, audience = typing(group(), BOB, NOW, NOW + timedelta(seconds=5))
    assert audience == [ALICE, CAROL]
    assert notice.envelope() == {
        "type": "typing",
        "at": "2025-01-01T12:00:00Z",
        "data": {"conversation_id": str(UUID(int=100)), "user_id": str(BOB), "until": "2025-01-01T12:00:05Z"},
    }
    with pytest.raises(Forbidden):
        typing(group(), MALLORY, NOW, NOW)
