"""Inbound replies over HTTP, on both profiles: a copy delivered on WhatsApp gets a provider id; the
provider's signed reply answering it becomes a message from the replying user, with its origin,
that the other member finds in the history and in their event log; a retried reply adds nothing;
a bad signature is refused; an unknown sender is kept as unmatched."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid

from tests.integration.http.helpers import conversation, text_message, wait_for_status
from tests.integration.http.profiles import CHANNEL_SECRETS

WHATSAPP_SECRET = CHANNEL_SECRETS["CHAT4ALL_CHANNEL_SECRET_WHATSAPP"]


def phone() -> str:
    return "+55119" + "".join(random.choices("0123456789", k=8))


def signed(body: dict, secret: str = WHATSAPP_SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}


async def post_reply(client, body: dict, secret: str = WHATSAPP_SECRET):
    raw, headers = signed(body, secret)
    return await client.post("/v1/channels/whatsapp/inbound", content=raw, headers=headers)


async def delivered_copy(deployment, alice, alice_headers, bob) -> tuple[str, str]:
    """Alice's message to Bob on WhatsApp, delivered: its conversation and Bob's copy's provider id."""
    conversation_id = await conversation(deployment, alice_headers, [alice, bob])
    sent = text_message(conversation_id, alice, "amanhã às 10?")
    assert (await deployment.client.post("/v1/messages", json=sent, headers=alice_headers)).status_code in (200, 202)
    await wait_for_status(deployment.client, alice_headers, sent["message_id"], ("delivered",), timeout=30)
    detail = (await deployment.client.get(f"/v1/messages/{sent['message_id']}", headers=alice_headers)).json()
    (receipt,) = detail["receipts"]
    assert receipt["recipient_id"] == bob and receipt["provider_message_ids"]["whatsapp"].startswith("wamid.")
    return conversation_id, receipt["provider_message_ids"]["whatsapp"]


async def test_a_reply_on_whatsapp_joins_the_conversation_once(deployment, client):
    alice, alice_headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    number = phone()
    saved = await client.put("/v1/users/me/channels", json={"whatsapp": number}, headers=bob_headers)
    assert saved.status_code == 200 and saved.json() == {"handles": {"whatsapp": number}}
    conversation_id, context = await delivered_copy(deployment, alice, alice_headers, bob)
    alice_since = (await client.get("/v1/events", headers=alice_headers)).json()["next"]

    reply = {"from": number, "id": f"wamid.{uuid.uuid4().hex}", "text": {"body": "sim!"}, "context": {"id": context}}
    taken = await post_reply(client, reply)
    assert taken.status_code == 200, taken.text
    assert taken.json()["status"] == "accepted" and taken.json().get("duplicate", False) is False
    message_id = taken.json()["message_id"]

    page = (await client.get(f"/v1/conversations/{conversation_id}/messages", headers=alice_headers)).json()
    (shown,) = [each for each in page["messages"] if each["message_id"] == message_id]
    assert (shown["from"], shown["origin"], shown["payload"]["text"]) == (bob, "whatsapp", "sim!")
    events = (await client.get("/v1/events", params={"since": alice_since, "timeout": 10}, headers=alice_headers)).json()
    created = [e for e in events["events"] if e["type"] == "message.created" and e["data"]["message_id"] == message_id]
    assert len(created) == 1 and created[0]["data"]["origin"] == "whatsapp"
    # It goes on to Alice like any message: delivered on the channel of the message it answers.
    await wait_for_status(client, alice_headers, message_id, ("delivered",), timeout=30)

    again = await post_reply(client, reply)
    assert again.status_code == 200 and again.json() == {"status": "accepted", "message_id": message_id, "duplicate": True}
    total = (await client.get(f"/v1/conversations/{conversation_id}/messages", headers=alice_headers)).json()["total"]
    assert total == page["total"] == 2


async def test_a_reply_with_a_wrong_or_missing_signature_is_refused(deployment, client):
    alice, alice_headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    number = phone()
    await client.put("/v1/users/me/channels", json={"whatsapp": number}, headers=bob_headers)
    conversation_id, context = await delivered_copy(deployment, alice, alice_headers, bob)
    reply = {"from": number, "id": f"wamid.{uuid.uuid4().hex}", "text": {"body": "forjada"}, "context": {"id": context}}

    forged = await post_reply(client, reply, secret="not-the-whatsapp-secret")
    unsigned = await client.post("/v1/channels/whatsapp/inbound", content=json.dumps(reply).encode())
    for refused in (forged, unsigned):
        assert refused.status_code == 401 and refused.json()["error_code"] == "invalid_signature"
    raw, headers = signed(reply)  # signed with Instagram's secret is not signed for WhatsApp
    instagram = await client.post("/v1/channels/instagram/inbound", content=raw, headers=headers)
    assert instagram.status_code == 401
    page = (await client.get(f"/v1/conversations/{conversation_id}/messages", headers=alice_headers)).json()
    assert page["total"] == 1


async def test_a_reply_from_an_unknown_handle_or_context_is_kept_as_unmatched(deployment, client):
    alice, alice_headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    number = phone()
    await client.put("/v1/users/me/channels", json={"whatsapp": number}, headers=bob_headers)
    conversation_id, context = await delivered_copy(deployment, alice, alice_headers, bob)
    for sender, answered, reason in ((phone(), context, "unknown_handle"), (number, "wamid.never-sent", "unknown_context")):
        reply = {"from": sender, "id": f"wamid.{uuid.uuid4().hex}", "text": {"body": "oi"}, "context": {"id": answered}}
        for _ in range(2):  # the provider retries: the same answer
            kept = await post_reply(client, reply)
            assert kept.status_code == 202 and kept.json() == {"status": "unmatched", "reason": reason}
    page = (await client.get(f"/v1/conversations/{conversation_id}/messages", headers=alice_headers)).json()
    assert page["total"] == 1
    malformed = await post_reply(client, {"from": number, "text": "flat"})
    assert malformed.status_code == 400 and malformed.json()["error_code"] == "invalid_inbound"


async def test_handles_are_validated_and_belong_to_one_user(deployment, client):
    _, bob_headers = await deployment.user()
    _, carol_headers = await deployment.user()
    number, name = phone(), f"@bob.{uuid.uuid4().hex[:8]}"
    saved = await client.put("/v1/users/me/channels", json={"whatsapp": number, "instagram": name.upper()}, headers=bob_headers)
    assert saved.status_code == 200 and saved.json()["handles"] == {"whatsapp": number, "instagram": name}
    assert (await client.get("/v1/users/me/channels", headers=bob_headers)).json()["handles"] == saved.json()["handles"]

    taken = await client.put("/v1/users/me/channels", json={"whatsapp": number}, headers=carol_headers)
    assert taken.status_code == 409 and taken.json()["error_code"] == "handle_taken"
    invalid = await client.put("/v1/users/me/channels", json={"whatsapp": "12345", "sms": "+5511"}, headers=carol_headers)
    assert invalid.status_code == 400 and invalid.json()["error_code"] == "invalid_handle"
    assert (await client.get("/v1/users/me/channels", headers=carol_headers)).json() == {"handles": {}}
    assert (await client.get("/v1/users/me/channels")).status_code == 401
