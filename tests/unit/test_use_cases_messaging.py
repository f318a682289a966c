from __future__ import annotations

import attrs
import pytest

from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
from chat4all.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from chat4all.domain.messages import MAX_TEXT_LENGTH, FilePayload, MessageStatus, Priority, TextPayload


@pytest.fixture
async def trio(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    return alice, bob, carol, await hub.conversation(alice, bob)


async def test_accepted_message_is_stored_with_its_routing_event(hub, trio):
    alice, bob, _, chat = trio
    hub.clock.advance()
    message = await hub.send_text(alice, chat, "hi bob", channels=("whatsapp", "instagram"), priority=Priority.HIGH)
    stored = await hub.message(message.id)
    assert stored.status is MessageStatus.ACCEPTED
    assert stored.payload == TextPayload("hi bob")
    assert stored.channels == ("whatsapp", "instagram")
    assert stored.priority is Priority.HIGH
    assert [event.status for event in stored.history] == ["accepted"]
    assert [(event.topic, event.key, event.payload) for event in hub.store.outbox_events()] == [
        (MESSAGE_PROCESSING, str(chat.id), {"message_id": str(message.id)})
    ]
    assert hub.store.conversations[chat.id].last_activity_at == hub.clock.now()


async def rejected(hub, caller, request, error):
    with pytest.raises(error) as raised:
        await hub.send.execute(caller.id, request)
    assert hub.store.messages == {} and hub.store.outbox_events() == []
    return raised.value


async def test_sender_must_be_the_caller(hub, trio):
    alice, bob, _, chat = trio
    error = await rejected(hub, bob, hub.request(alice, chat), Forbidden)
    assert error.code == "sender_mismatch"


async def test_sender_must_be_a_member(hub, trio):
    _, _, carol, chat = trio
    error = await rejected(hub, carol, hub.request(carol, chat), Forbidden)
    assert error.code == "not_a_member"


async def test_membership_is_checked_on_every_send_not_only_the_first(hub, trio):
    alice, _, carol, chat = trio
    await hub.send_text(alice, chat, "the conversation is known to this process now")
    with pytest.raises(Forbidden) as raised:
        await hub.send.execute(carol.id, hub.request(carol, chat))
    assert raised.value.code == "not_a_member"
    assert len(hub.store.messages) == 1


async def test_unknown_conversation_is_not_found(hub, trio):
    alice, _, _, chat = trio
    request = attrs.evolve(hub.request(alice, chat), conversation_id=hub.ids.new_id())
    error = await rejected(hub, alice, request, NotFound)
    assert error.code == "conversation_not_found"


@pytest.mark.parametrize("recipient", ["self", "outsider"])
async def test_to_must_be_another_member(hub, trio, recipient):
    alice, _, carol, chat = trio
    to = alice if recipient == "self" else carol
    error = await rejected(hub, alice, hub.request(alice, chat, to=to), InvalidInput)
    assert error.code == "invalid_recipient"


async def test_to_another_member_is_accepted(hub, trio):
    alice, bob, _, chat = trio
    message = await hub.send_text(alice, chat, to=bob)
    assert message.recipient_id == bob.id


async def test_channels_must_be_given(hub, trio):
    alice, _, _, chat = trio
    await rejected(hub, alice, hub.request(alice, chat, channels=()), InvalidInput)


async def test_unknown_channels_are_named(hub, trio):
    alice, _, _, chat = trio
    error = await rejected(hub, alice, hub.request(alice, chat, channels=("whatsapp", "pigeon")), InvalidInput)
    assert error.code == "unknown_channel"
    assert "pigeon" in error.detail


async def test_all_means_every_connector(hub, trio):
    alice, _, _, chat = trio
    message = await hub.send_text(alice, chat, channels=("all",))
    assert sorted(message.channels) == sorted(hub.connectors)
    assert set((await hub.message(message.id)).deliveries) == set(hub.connectors)


async def test_repeated_channels_count_once(hub, trio):
    alice, _, _, chat = trio
    message = await hub.send_text(alice, chat, channels=("whatsapp", "whatsapp"))
    assert message.channels == ("whatsapp",)


@pytest.mark.parametrize("text", ["", "x" * (MAX_TEXT_LENGTH + 1), None])
async def test_text_must_be_1_to_4096_characters(hub, trio, text):
    alice, _, _, chat = trio
    await rejected(hub, alice, hub.request(alice, chat, text), InvalidInput)


async def test_text_of_4096_characters_is_accepted(hub, trio):
    alice, _, _, chat = trio
    message = await hub.send_text(alice, chat, "x" * MAX_TEXT_LENGTH)
    assert len((await hub.message(message.id)).payload.text) == MAX_TEXT_LENGTH


# --- files -----------------------------------------------------------------------------------


async def test_completed_upload_can_be_sent_and_then_seen_and_forwarded_by_recipients(hub, trio):
    alice, bob, carol, chat = trio
    upload = await hub.uploaded_file(alice, b"holiday pictures")
    message = await hub.send.execute(alice.id, hub.request(alice, chat, file_id=upload.id))
    assert message.payload == FilePayload(upload.id, "photo.jpg", 16, "image/jpeg", hub.sha256(b"holiday pictures"))
    assert (await hub.view_upload.execute(bob.id, upload.id)).upload.id == upload.id
    with pytest.raises(Forbidden):
        await hub.view_upload.execute(carol.id, upload.id)
    with_carol = await hub.conversation(bob, carol)
    forwarded = await hub.send.execute(bob.id, hub.request(bob, with_carol, file_id=upload.id))
    assert forwarded.payload.file_id == upload.id
    assert (await hub.view_upload.execute(carol.id, upload.id)).upload.id == upload.id


async def test_unknown_file_is_not_found(hub, trio):
    alice, _, _, chat = trio
    error = await rejected(hub, alice, hub.request(alice, chat, file_id=hub.ids.new_id()), NotFound)
    assert error.code == "file_not_found"


async def test_file_must_be_completed(hub, trio):
    alice, _, _, chat = trio
    upload = await hub.start_upload(alice, b"half a file")
    error = await rejected(hub, alice, hub.request(alice, chat, file_id=upload.id), InvalidInput)
    assert error.code == "file_not_completed"


async def test_someone_elses_unshared_file_is_forbidden(hub, trio):
    alice, bob, _, chat = trio
    upload = await hub.uploaded_file(bob, b"bob's secret")
    error = await rejected(hub, alice, hub.request(alice, chat, file_id=upload.id), Forbidden)
    assert error.code == "file_forbidden"


# --- idempotency -----------------------------------------------------------------------------


async def test_resending_the_same_message_returns_it_and_creates_nothing(hub, trio):
    alice, _, _, chat = trio
    request = hub.request(alice, chat, "once", channels=("whatsapp", "instagram"))
    first = await hub.send.execute(alice.id, request)
    hub.clock.advance()
    reordered = attrs.evolve(request, channels=("instagram", "whatsapp"))
    again = await hub.send.execute(alice.id, reordered)
    assert again.id == first.id and again.created_at == first.created_at
    assert len(hub.store.messages) == 1
    assert len(hub.store.outbox_events()) == 1


async def test_resending_the_same_file_message_is_idempotent(hub, trio):
    alice, _, _, chat = trio
    upload = await hub.uploaded_file(alice)
    request = hub.request(alice, chat, file_id=upload.id)
    first = await hub.send.execute(alice.id, request)
    assert (await hub.send.execute(alice.id, request)).id == first.id
    assert len(hub.store.outbox_events()) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda bob: {"text": "different"},
        lambda bob: {"channels": ("instagram",)},
        lambda bob: {"priority": Priority.LOW},
        lambda bob: {"recipient_id": bob.id},
    ],
    ids=["text", "channels", "priority", "to"],
)
async def test_reusing_a_message_id_for_other_content_conflicts(hub, trio, change):
    alice, bob, _, chat = trio
    request = hub.request(alice, chat, "original")
    first = await hub.send.execute(alice.id, request)
    with pytest.raises(Conflict) as raised:
        await hub.send.execute(alice.id, attrs.evolve(request, **change(bob)))
    assert raised.value.code == "message_id_conflict"
    assert (await hub.message(first.id)).payload == TextPayload("original")
    assert len(hub.store.outbox_events()) == 1


async def test_another_user_reusing_a_message_id_conflicts(hub, trio):
    alice, bob, _, chat = trio
    request = hub.request(alice, chat, "mine")
    await hub.send.execute(alice.id, request)
    with pytest.raises(Conflict):
        await hub.send.execute(bob.id, attrs.evolve(request, sender_id=bob.id))


# --- reading ---------------------------------------------------------------------------------


async def test_members_page_through_messages_oldest_first(hub, trio):
    alice, bob, _, chat = trio
    sent = []
    for number in range(5):
        hub.clock.advance()
        sender = alice if number % 2 == 0 else bob
        sent.append(await hub.send_text(sender, chat, f"message {number}"))
    page, total = await hub.read.list(bob.id, chat.id, limit=2, offset=1)
    assert total == 5
    assert [message.payload.text for message in page] == ["message 1", "message 2"]
    everything, _ = await hub.read.list(alice.id, chat.id, limit=100, offset=0)
    assert [message.id for message in everything] == [message.id for message in sent]
    beyond, total = await hub.read.list(alice.id, chat.id, limit=10, offset=5)
    assert beyond == [] and total == 5


@pytest.mark.parametrize("limit, offset", [(0, 0), (101, 0), (10, -1)])
async def test_page_limits_are_enforced(hub, trio, limit, offset):
    alice, _, _, chat = trio
    with pytest.raises(InvalidInput):
        await hub.read.list(alice.id, chat.id, limit=limit, offset=offset)


async def test_page_of_100_is_allowed(hub, trio):
    alice, _, _, chat = trio
    await hub.send_text(alice, chat)
    page, total = await hub.read.list(alice.id, chat.id, limit=100, offset=0)
    assert len(page) == total == 1


async def test_outsiders_cannot_read_messages(hub, trio):
    alice, _, carol, chat = trio
    message = await hub.send_text(alice, chat)
    with pytest.raises(Forbidden):
        await hub.read.list(carol.id, chat.id, limit=10, offset=0)
    with pytest.raises(Forbidden):
        await hub.read.get(carol.id, message.id)
    with pytest.raises(NotFound):
        await hub.read.list(carol.id, hub.ids.new_id(), limit=10, offset=0)


async def test_a_member_reads_one_message_with_its_history(hub, trio):
    alice, bob, _, chat = trio
    message = await hub.send_text(alice, chat, "hello bob")
    seen = await hub.read.get(bob.id, message.id)
    assert seen.payload.text == "hello bob"
    assert [event.status for event in seen.history] == ["accepted"]
    with pytest.raises(NotFound):
        await hub.read.get(bob.id, hub.ids.new_id())


async def test_reusing_someone_elses_message_id_obeys_the_access_rule_first(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    private = await hub.conversation(alice, bob)
    theirs = await hub.conversation(carol, bob)
    sent = await hub.send_text(alice, private, "secret")
    # carol is not in alice's conversation: 403, exactly as for a new message, whatever the content
    for text in ("secret", "guess"):
        with pytest.raises(Forbidden):
            await hub.send.execute(carol.id, hub.request(carol, private, text, message_id=sent.id))
    unknown_conversation = attrs.evolve(hub.request(carol, private, "x", message_id=sent.id), conversation_id=hub.ids.new_id())
    with pytest.raises(NotFound):
        await hub.send.execute(carol.id, unknown_conversation)
    # in a conversation of her own the id is simply taken
    with pytest.raises(Conflict):
        await hub.send.execute(carol.id, hub.request(carol, theirs, "secret", message_id=sent.id))
    # and alice's own retry is still answered with her message
    assert (await hub.send.execute(alice.id, hub.request(alice, private, "secret", message_id=sent.id))).id == sent.id
