"""Channel failover end to end, on both profiles (the distributed one with two workers): WhatsApp
fails permanently (CHAT4ALL_CONNECTOR_FAILURES), the message is delivered on Instagram, the
history shows both attempts per recipient, and the sender hears each outcome."""

from __future__ import annotations

import pytest_asyncio

from tests.integration.http.helpers import conversation, text_message, wait_for_status
from tests.integration.http.profiles import distributed, embedded
from tests.integration.http.test_auth_http import assert_error
from tests.integration.http.test_delivery_status_http import status_events

FAILURES = {"CHAT4ALL_CONNECTOR_FAILURES": "whatsapp=permanent"}


@pytest_asyncio.fixture(scope="module", params=["embedded", "distributed"])
async def failing(request, tmp_path_factory):
    """A deployment whose WhatsApp refuses every message."""
    path = tmp_path_factory.mktemp(f"failover-{request.param}")
    running = embedded(path, FAILURES) if request.param == "embedded" else distributed(path, FAILURES, workers=2)
    async with running as deployment:
        yield deployment


async def test_whatsapp_failing_for_good_is_delivered_on_instagram(failing):
    client = failing.client
    alice, alice_headers = await failing.user()
    bob, _ = await failing.add_user()
    carol, _ = await failing.add_user()
    team = await conversation(failing, alice_headers, [alice, bob, carol], "group")
    body = text_message(team, alice, channels=("whatsapp",), failover=["instagram"])
    accepted = await client.post("/v1/messages", json=body, headers=alice_headers)
    assert accepted.status_code == 200, accepted.text

    detail = await wait_for_status(client, alice_headers, body["message_id"], timeout=60)
    assert detail["status"] == "delivered", detail
    assert detail["failover"] == ["instagram"]
    assert detail["deliveries"] == {"whatsapp": "failed", "instagram": "delivered"}
    assert detail["history"][-1]["detail"] == "delivered on: instagram (after whatsapp failed)"
    assert [entry["status"] for entry in detail["history"] if entry["channel"]] == ["failed", "failover", "delivered"]
    per_recipient = {
        recipient: [(a["channel"], a["outcome"]) for a in detail["attempts"] if a["recipient_id"] == recipient]
        for recipient in (bob, carol)
    }
    assert per_recipient == {who: [("whatsapp", "failed"), ("instagram", "delivered")] for who in (bob, carol)}
    assert all(a["error"] for a in detail["attempts"] if a["outcome"] == "failed")
    assert all(receipt["delivered_at"] for receipt in detail["receipts"])

    told = await status_events(client, alice_headers, body["message_id"], 2)
    assert [(e["status"], e["channel"]["name"], e["channel"]["status"]) for e in told] == [
        ("routed", "whatsapp", "failed"),
        ("delivered", "instagram", "delivered"),
    ]
    log = failing.connector_log()
    if failing.profile == "distributed":  # the workers' connectors log every send
        assert f"Mensagem {body['message_id']} enviada para o usuário {bob} no Instagram" in log
        assert f"Mensagem {body['message_id']} enviada para o usuário {bob} no WhatsApp" not in log


async def test_a_failover_that_cannot_be_followed_is_refused(failing):
    client = failing.client
    alice, headers = await failing.user()
    bob, _ = await failing.add_user()
    chat = await conversation(failing, headers, [alice, bob])
    cases = [
        (("whatsapp",), ["telegram"], "unknown_channel"),
        (("whatsapp",), ["instagram", "instagram"], "duplicate_failover_channel"),
        (("whatsapp", "instagram"), ["instagram"], "duplicate_failover_channel"),
    ]
    for channels, failover, code in cases:
        body = text_message(chat, alice, channels=channels, failover=failover)
        refused = await client.post("/v1/messages", json=body, headers=headers)
        assert_error(refused, 400, code)
        assert "failover" in refused.text
        assert (await client.get(f"/v1/messages/{body['message_id']}", headers=headers)).status_code == 404


async def test_the_message_created_event_carries_the_failover_channels_as_get_shows_them(failing):
    """A webhook or live client learns of the message from its event: the failover chain included."""
    client = failing.client
    alice, alice_headers = await failing.user()
    bob, bob_headers = await failing.user()
    chat = await conversation(failing, alice_headers, [alice, bob])
    with_failover = text_message(chat, alice, channels=("whatsapp",), failover=["instagram"])
    without = text_message(chat, alice, channels=("instagram",))
    for body in (with_failover, without):
        assert (await client.post("/v1/messages", json=body, headers=alice_headers)).status_code == 200
    log = (await client.get("/v1/events?since=0&timeout=0", headers=bob_headers)).json()["events"]
    created = {event["data"]["message_id"]: event["data"] for event in log if event["type"] == "message.created"}
    assert created[with_failover["message_id"]]["failover"] == ["instagram"]
    assert created[without["message_id"]]["failover"] == []
    shown = (await client.get(f"/v1/messages/{with_failover['message_id']}", headers=bob_headers)).json()
    unchanging = ("message_id", "conversation_id", "from", "to", "channels", "failover", "payload", "priority", "created_at", "origin")
    assert {key: created[with_failover["message_id"]][key] for key in unchanging} == {key: shown[key] for key in unchanging}
