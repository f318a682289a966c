"""Replies from a channel's provider: signed, placed in the conversation they answer as a message
from the user with that handle, taken in once per provider message id, kept aside when unplaceable."""

from __future__ import annotations

import hashlib
import hmac
import json

import attrs
import pytest

from chat4all.application.inbound import ReceiveReply
from chat4all.application.ports import SentCopy
from chat4all.domain.channel_handles import inbound_message_id
from chat4all.domain.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from chat4all.domain.events import EventType

SECRET = "whatsapp-secret-for-the-tests"


def signed(body: dict) -> tuple[bytes, str]:
    raw = json.dumps(body).encode()
    return raw, "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


def reply(sender: str = "+5511999990000", *, provider_id: str = "wamid.REPLY1", context: str = "wamid.SENT1") -> dict:
    return {"from": sender, "id": provider_id, "text": {"body": "sim, amanhã"}, "context": {"id": context}}


def receiver(hub) -> ReceiveReply:
    return attrs.evolve(hub.process.receive_reply, secrets={"whatsapp": SECRET})


async def scene(hub):
    """Alice wrote to Bob on WhatsApp; the provider knows Bob's copy as wamid.SENT1; Bob's number is his."""
    alice, bob = await hub.users("alice", "bob")
    conversation = await hub.conversation(alice, bob)
    sent = await hub.send_text(alice, conversation, "amanhã às 10?")
    hub.store.provider_copies["whatsapp", "wamid.SENT1"] = SentCopy(sent.id, bob.id)
    await hub.process.channel_handles.replace(bob.id, {"whatsapp": "+55 11 99999-0000"})
    return alice, bob, conversation


async def test_a_reply_becomes_a_message_from_its_sender_that_reaches_the_others(hub):
    alice, bob, conversation = await scene(hub)
    outcome = await receiver(hub).execute("whatsapp", *signed(reply()))

    assert outcome.duplicate is False and outcome.unmatched is None
    message = await hub.message(outcome.message_id)
    assert (message.sender_id, message.conversation_id, message.origin) == (bob.id, conversation.id, "whatsapp")
    assert message.payload.text == "sim, amanhã" and message.channels == ("whatsapp",)
    created = [e for e in hub.store.user_events[alice.id] if e.type is EventType.MESSAGE_CREATED]
    assert created[-1].data["message_id"] == str(message.id) and created[-1].data["origin"] == "whatsapp"
    assert hub.store.inbound_replies["whatsapp", "wamid.REPLY1"] == message.id


async def test_a_retried_reply_changes_nothing(hub):
    await scene(hub)
    first = await receiver(hub).execute("whatsapp", *signed(reply()))
    stored = len(hub.store.messages)
    again = await receiver(hub).execute("whatsapp", *signed(reply()))
    assert (again.message_id, again.duplicate) == (first.message_id, True)
    assert len(hub.store.messages) == stored


async def test_a_retry_after_a_crash_before_recording_finds_its_message(hub):
    await scene(hub)
    first = await receiver(hub).execute("whatsapp", *signed(reply()))
    del hub.store.inbound_replies["whatsapp", "wamid.REPLY1"]  # the first try stopped before recording it
    stored = len(hub.store.messages)
    again = await receiver(hub).execute("whatsapp", *signed(reply()))
    assert again.message_id == first.message_id == inbound_message_id("whatsapp", "wamid.REPLY1")
    assert len(hub.store.messages) == stored


@pytest.mark.parametrize(
    "body, reason",
    [
        (reply(sender="+5511888880000"), "unknown_handle"),
        (reply(sender="not a number"), "unknown_handle"),
        (reply(context="wamid.NEVER_SENT"), "unknown_context"),
    ],
)
async def test_a_reply_that_cannot_be_placed_is_kept_as_unmatched(hub, body, reason):
    await scene(hub)
    stored = len(hub.store.messages)
    outcome = await receiver(hub).execute("whatsapp", *signed(body))
    assert (outcome.message_id, outcome.unmatched) == (None, reason)
    assert len(hub.store.messages) == stored
    [kept] = await hub.process.list_unmatched_replies.execute("whatsapp")
    assert (kept.reply.sender_handle, kept.reply.context_id, kept.reply.text, kept.reason) == (
        body["from"], body["context"]["id"], "sim, amanhã", reason
    )


async def test_operators_list_unmatched_replies_newest_first_by_channel(hub):
    await scene(hub)
    take_in = receiver(hub).execute
    for index in range(3):
        await take_in("whatsapp", *signed(reply(sender="+5511888880000", provider_id=f"wamid.U{index}")))
        hub.clock.advance()
    await take_in("whatsapp", *signed(reply()))  # placed: not listed
    listed = hub.process.list_unmatched_replies.execute
    assert [one.reply.provider_message_id for one in await listed("whatsapp")] == ["wamid.U2", "wamid.U1", "wamid.U0"]
    assert [one.reply.provider_message_id for one in await listed(None, limit=2)] == ["wamid.U2", "wamid.U1"]
    assert await listed("instagram") == []
    with pytest.raises(NotFound):
        await listed("telegram")
    for limit in (0, 1001):
        with pytest.raises(InvalidInput):
            await listed(None, limit=limit)


async def test_the_sender_must_be_a_member_of_the_answered_conversation(hub):
    await scene(hub)
    carol = await hub.user("carol")
    await hub.process.channel_handles.replace(carol.id, {"whatsapp": "+5511777770000"})
    outcome = await receiver(hub).execute("whatsapp", *signed(reply(sender="+5511777770000")))
    assert outcome.unmatched == "not_a_member"


async def test_only_a_body_signed_with_the_channel_secret_is_read(hub):
    await scene(hub)
    raw, signature = signed(reply())
    wrong = "sha256=" + hmac.new(b"another secret", raw, hashlib.sha256).hexdigest()
    for header in (None, "", wrong, signature.removeprefix("sha256="), signature[:-2]):
        with pytest.raises(NotAuthenticated) as refused:
            await receiver(hub).execute("whatsapp", raw, header)
        assert refused.value.code == "invalid_signature"
    with pytest.raises(NotAuthenticated):  # the signature covers the exact bytes
        await receiver(hub).execute("whatsapp", raw + b" ", signature)
    assert hub.store.inbound_replies == {} and hub.store.unmatched_inbound == {}


async def test_channels_without_a_secret_or_a_connector_take_no_replies(hub):
    raw, signature = signed(reply())
    with pytest.raises(Forbidden) as disabled:
        await hub.process.receive_reply.execute("whatsapp", raw, signature)  # no secret configured
    assert disabled.value.code == "inbound_disabled"
    with pytest.raises(NotFound):
        await receiver(hub).execute("telegram", raw, signature)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b"[" * 100_000, json.dumps({**reply(), "text": "flat"}).encode(), json.dumps({**reply(), "id": ""}).encode()],
)
async def test_a_malformed_body_is_refused_with_the_fields_at_fault(hub, body):
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with pytest.raises(InvalidInput) as refused:
        await receiver(hub).execute("whatsapp", body, signature)
    assert refused.value.code == "invalid_inbound"


async def test_handles_are_checked_normalised_and_owned_by_one_user(hub):
    bob, carol = await hub.users("bob", "carol")
    handles = hub.process.channel_handles
    assert await handles.replace(bob.id, {"whatsapp": "+55 (11) 99999-0000", "instagram": "Bob.Silva"}) == {
        "whatsapp": "+5511999990000",
        "instagram": "@bob.silva",
    }
    assert await handles.read(bob.id) == {"instagram": "@bob.silva", "whatsapp": "+5511999990000"}
    with pytest.raises(Conflict) as taken:
        await handles.replace(carol.id, {"instagram": "@BOB.SILVA"})
    assert taken.value.code == "handle_taken" and list(taken.value.field_errors) == ["instagram"]
    with pytest.raises(InvalidInput) as invalid:
        await handles.replace(carol.id, {"whatsapp": "11 9999", "instagram": "no spaces", "telegram": "@c"})
    assert invalid.value.code == "invalid_handle"
    assert sorted(invalid.value.field_errors) == ["instagram", "telegram", "whatsapp"]
    assert await handles.replace(bob.id, {"instagram": "@bob.silva"}) == {"instagram": "@bob.silva"}
    assert await handles.read(bob.id) == {"instagram": "@bob.silva"}
    assert await handles.replace(carol.id, {"whatsapp": "+5511999990000"}) == {"whatsapp": "+5511999990000"}
