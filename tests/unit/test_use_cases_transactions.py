"""What the use cases rely on from a unit of work, and what they do when requests race."""

from __future__ import annotations

import asyncio

import pytest

from chat4all.application.errors import DuplicateMessage
from chat4all.domain.conversations import ConversationMetadata, ConversationType
from chat4all.domain.errors import Conflict
from chat4all.domain.messages import DeliveryStatus, MessageStatus
from chat4all.domain.uploads import UploadStatus
from chat4all.domain.users import User


async def test_writes_are_discarded_without_commit(hub):
    ghost = User(hub.ids.new_id(), "ghost", "hash", hub.clock.now())
    async with hub.uow() as uow:
        await uow.users.add(ghost)
        assert await uow.users.get_by_username("ghost") == ghost
        await uow.outbox.add("topic", "key", {})
    assert hub.store.users == {} and hub.store.outbox_events() == []
    async with hub.uow() as uow:
        assert await uow.users.get(ghost.id) is None


async def test_writes_are_invisible_to_others_until_commit(hub):
    user = User(hub.ids.new_id(), "alice", "hash", hub.clock.now())
    async with hub.uow() as writer:
        await writer.users.add(user)
        async with hub.uow() as reader:
            assert await reader.users.get(user.id) is None
        await writer.commit()
    async with hub.uow() as reader:
        assert await reader.users.get(user.id) == user


async def test_changing_a_loaded_object_changes_nothing_until_it_is_saved(hub):
    alice = await hub.user("alice")
    upload = await hub.start_upload(alice, b"0123456789")
    async with hub.uow() as uow:
        loaded = await uow.uploads.get(upload.id)
        loaded.expire()
    assert (await hub.upload(upload.id)).status is UploadStatus.PENDING


async def test_a_duplicate_message_spoils_the_unit_of_work(hub):
    alice, bob = await hub.users("alice", "bob")
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    async with hub.uow() as uow:
        with pytest.raises(DuplicateMessage):
            await uow.messages.add(await hub.message(message.id), 2)
        with pytest.raises(RuntimeError):
            await uow.commit()


async def test_racing_sends_of_one_message_store_it_once(hub):
    alice, bob = await hub.users("alice", "bob")
    request = hub.request(alice, await hub.conversation(alice, bob))
    first, second = await asyncio.gather(hub.send.execute(alice.id, request), hub.send.execute(alice.id, request))
    assert first.id == second.id == request.message_id
    assert len(hub.store.messages) == 1
    assert len(hub.store.outbox_events()) == 1


async def test_racing_creations_of_one_private_conversation_create_it_once(hub):
    alice, bob = await hub.users("alice", "bob")

    def create(caller, other):
        return hub.create_conversation.execute(
            caller=caller.id, type=ConversationType.PRIVATE, members=[caller.id, other.id], metadata=ConversationMetadata()
        )

    results = await asyncio.gather(create(alice, bob), create(bob, alice))
    assert sorted(result.created for result in results) == [False, True]
    assert results[0].conversation.id == results[1].conversation.id
    assert len(hub.store.conversations) == 1


async def test_racing_registrations_of_one_username_give_one_user_and_a_conflict(hub):
    outcomes = await asyncio.gather(
        hub.register.execute("alice", hub.password), hub.register.execute("alice", hub.password), return_exceptions=True
    )
    users = [outcome for outcome in outcomes if isinstance(outcome, User)]
    errors = [outcome for outcome in outcomes if not isinstance(outcome, User)]
    assert len(users) == 1 and list(hub.store.users) == [users[0].id]
    assert len(errors) == 1 and isinstance(errors[0], Conflict) and errors[0].code == "username_taken"


async def test_racing_deliveries_on_two_channels_both_count(hub):
    alice, bob = await hub.users("alice", "bob")
    message = await hub.send_text(alice, await hub.conversation(alice, bob), channels=("whatsapp", "instagram"))
    await asyncio.gather(hub.deliver.execute(message.id, "whatsapp"), hub.deliver.execute(message.id, "instagram"))
    delivered = await hub.message(message.id)
    assert delivered.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.DELIVERED}
    assert delivered.status is MessageStatus.DELIVERED
    assert [event.status for event in delivered.history].count("delivered") == 3


async def test_racing_redeliveries_deliver_and_record_once(hub):
    alice, bob = await hub.users("alice", "bob")
    message = await hub.send_text(alice, await hub.conversation(alice, bob))
    await asyncio.gather(*(hub.deliver.execute(message.id, "whatsapp") for _ in range(3)))
    delivered = await hub.message(message.id)
    assert [(event.status, event.channel) for event in delivered.history].count(("delivered", "whatsapp")) == 1


async def test_racing_chunks_are_all_recorded(hub):
    alice = await hub.user("alice")
    data = b"0123456789abcdef"
    upload = await hub.start_upload(alice, data)
    await asyncio.gather(
        *(hub.upload_chunk.execute(alice.id, upload.id, index, data[index * 4 : index * 4 + 4]) for index in range(4))
    )
    assert (await hub.upload(upload.id)).received_chunks == {0, 1, 2, 3}
