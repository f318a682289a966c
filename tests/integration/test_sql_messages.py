"""The SQL message repository against real SQLite and PostgreSQL: messages with their deliveries and
history, listings and pages, one row per message id."""

from __future__ import annotations

from uuid import uuid4

import pytest

from chat4all.adapters.sql.tables import message_events, messages
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.errors import DuplicateMessage
from chat4all.domain.messages import (
    DeliveryStatus,
    FilePayload,
    Message,
    MessageDraft,
    MessageStatus,
    Priority,
    StatusEvent,
    TextPayload,
)
from chat4all.domain.uploads import Upload, UploadStatus
from tests.integration.sql_records import add_users, at, count_rows, group, private, text_message

pytestmark = pytest.mark.services


async def test_message_add_get_update_with_deliveries_and_history(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    message = text_message(conversation, alice, "hello")
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.messages.add(message, 1)
        await tx.commit()
    assert message.new_events == []

    async with uow() as tx:
        loaded = await tx.messages.get(message.id, for_update=True)
        assert loaded is not None
        assert loaded.status is MessageStatus.ACCEPTED
        assert loaded.channels == ("whatsapp", "instagram")
        assert loaded.payload == TextPayload("hello")
        assert loaded.priority is Priority.NORMAL
        assert loaded.fingerprint == message.fingerprint
        assert loaded.created_at == at(1)
        assert list(loaded.deliveries.items()) == [("whatsapp", DeliveryStatus.PENDING), ("instagram", DeliveryStatus.PENDING)]
        assert loaded.history == [StatusEvent("accepted", at(1))]
        assert loaded.new_events == []
        assert loaded.mark_routed(at(2))
        assert loaded.record_delivery("instagram", delivered=False, now=at(3), detail="blocked")
        await tx.messages.update_many([loaded])
        assert loaded.new_events == []
        await tx.commit()

    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
        assert loaded is not None
        assert loaded.status is MessageStatus.ROUTED
        assert loaded.deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.FAILED}
        assert loaded.record_delivery("whatsapp", delivered=True, now=at(4))
        await tx.messages.update_many([loaded])
        await tx.commit()

    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
        assert await tx.messages.get(uuid4()) is None
    assert loaded is not None
    assert loaded.status is MessageStatus.FAILED
    assert loaded.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.FAILED}
    assert loaded.history == [
        StatusEvent("accepted", at(1)),
        StatusEvent("routed", at(2), detail="whatsapp, instagram"),
        StatusEvent("failed", at(3), channel="instagram", detail="blocked"),
        StatusEvent("delivered", at(4), channel="whatsapp"),
        StatusEvent("failed", at(4), detail="failed on: instagram"),
    ]
    assert all(event.at.tzinfo is not None for event in loaded.history)


async def test_file_payload_and_recipient_round_trip(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    upload = Upload(uuid4(), alice.id, "photo.png", 3_000_000_000 // 2, "image/png", 4, UploadStatus.COMPLETED, at(0), at(60))
    payload = FilePayload(upload.id, upload.filename, upload.file_size, "image/png", "ab" * 32)
    draft = MessageDraft(uuid4(), conversation.id, alice.id, bob.id, ("whatsapp",), payload, Priority.HIGH)
    message = Message.accept(draft, at(1))
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.uploads.add(upload)
        await tx.messages.add(message, 1)
        await tx.commit()
    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
    assert loaded is not None
    assert loaded.payload == payload
    assert (loaded.recipient_id, loaded.priority) == (bob.id, Priority.HIGH)


async def test_list_for_conversation_is_chronological_with_totals(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation, other = group([alice, bob, carol]), group([alice, bob, carol], name="other")
    sent = [text_message(conversation, alice, f"m{index}", seconds=10 - index) for index in range(7)]
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.conversations.add(other)
        await tx.messages.add(text_message(other, bob, "elsewhere"), 1)
        for position, message in enumerate(sent[:4], 1):
            await tx.messages.add(message, position)
        await tx.commit()
    async with uow() as tx:  # later transactions keep sorting after earlier ones
        for position, message in enumerate(sent[4:], 5):
            await tx.messages.add(message, position)
        routed = await tx.messages.get(sent[2].id)
        assert routed is not None and routed.record_delivery("whatsapp", delivered=True, now=at(20))
        await tx.messages.update_many([routed])
        await tx.commit()

    async with uow() as tx:
        page, total = await tx.messages.list_for_conversation(conversation.id, limit=100, offset=0)
        assert total == 7
        assert [m.payload.text for m in page] == [f"m{index}" for index in range(7)]  # type: ignore[union-attr]
        assert page[2].deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.PENDING}
        assert page[2].status is MessageStatus.ROUTED
        assert page[0].deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.PENDING}
        page, total = await tx.messages.list_for_conversation(conversation.id, limit=3, offset=3)
        assert total == 7 and [m.id for m in page] == [m.id for m in sent[3:6]]
        page, total = await tx.messages.list_for_conversation(conversation.id, limit=3, offset=7)
        assert (page, total) == ([], 7)
        assert await tx.messages.list_for_conversation(uuid4(), limit=3, offset=0) == ([], 0)


async def test_unfinished_messages_page_by_acceptance_time_then_id(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob = await add_users(uow, "alice", "bob")
    conversation = private(alice, bob)
    # Four share an acceptance time (a page boundary falls among them); one is finished; one is too recent.
    sent = [text_message(conversation, alice, f"m{index}", seconds=1 if index < 4 else index) for index in range(7)]
    async with uow() as tx:
        await tx.conversations.add(conversation)
        for position, message in enumerate(sent, 1):
            await tx.messages.add(message, position)
        await tx.commit()
    async with uow() as tx:
        finished = await tx.messages.get(sent[4].id)
        assert finished is not None
        assert finished.record_delivery("whatsapp", delivered=True, now=at(9))
        assert finished.record_delivery("instagram", delivered=True, now=at(9))
        await tx.messages.update_many([finished])
        await tx.commit()

    pages, after = [], None
    while True:
        async with uow() as tx:
            page = await tx.messages.unfinished_before(at(6), 2, after=after)
        pages.append([message.id for message in page])
        if len(page) < 2:
            break
        after = (page[-1].created_at, page[-1].id)

    expected = sorted([*sent[:4], sent[5]], key=lambda message: (message.created_at, message.id))
    assert [message_id for page in pages for message_id in page] == [message.id for message in expected]
    assert [len(page) for page in pages] == [2, 2, 1]


async def test_second_add_of_the_same_message_id_raises_duplicate_message(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    message = text_message(conversation, alice, "once")
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.messages.add(message, 1)
        await tx.commit()
    copy = text_message(conversation, bob, "twice")
    copy.id = message.id
    async with uow() as tx:
        with pytest.raises(DuplicateMessage):
            await tx.messages.add(copy, 2)
    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
    assert loaded is not None and loaded.payload == TextPayload("once") and len(loaded.history) == 1


async def test_message_events_are_appended_not_rewritten(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    message = text_message(conversation, alice, "hi", channels=("whatsapp",))
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.messages.add(message, 1)
        await tx.messages.update_many([message])  # nothing new: no extra rows
        await tx.commit()
    assert await count_rows(uow.engine, message_events) == 1
    assert await count_rows(uow.engine, messages) == 1
