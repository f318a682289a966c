"""What a channel's outcome tells the sender over HTTP, on both profiles (the distributed one with
its worker): a `message.status` in their event log, and the recipients' receipts delivered."""

from __future__ import annotations

import asyncio
import time

from tests.integration.http.helpers import conversation, text_message, wait_for_status


async def status_events(client, headers, message_id: str, count: int, timeout: float = 10.0) -> list[dict]:
    """The sender's `message.status` events about `message_id`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get("/v1/events", params={"since": 0, "limit": 500}, headers=headers)).json()
        found = [
            event["data"]
            for event in body["events"]
            if event["type"] == "message.status" and event["data"]["message_id"] == message_id
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_the_sender_hears_each_channel_deliver_and_the_receipts_show_when(deployment, client):
    alice, alice_headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    carol, _ = await deployment.add_user()
    team = await conversation(deployment, alice_headers, [alice, bob, carol], "group")
    body = text_message(team, alice, channels=("whatsapp", "instagram"))
    assert (await client.post("/v1/messages", json=body, headers=alice_headers)).status_code == 200

    detail = await wait_for_status(client, alice_headers, body["message_id"], timeout=30)
    assert detail["status"] == "delivered"
    told = await status_events(client, alice_headers, body["message_id"], 2)
    assert sorted(event["channel"]["name"] for event in told) == ["instagram", "whatsapp"]
    assert all(event["channel"]["status"] == "delivered" for event in told)
    assert told[-1]["status"] == "delivered"  # the last outcome finished the message
    receipts = {receipt["recipient_id"]: receipt for receipt in detail["receipts"]}
    assert set(receipts) == {bob, carol}
    assert all(receipt["delivered_at"] is not None and receipt["read_at"] is None for receipt in receipts.values())
    # Recipients are not told about the sender's ticks: their log has the message, not its outcomes.
    theirs = (await client.get("/v1/events", params={"since": 0}, headers=bob_headers)).json()["events"]
    assert [event["type"] for event in theirs if event["data"].get("message_id") == body["message_id"]] == [
        "message.created"
    ]


async def test_a_waiting_long_poll_wakes_when_the_channel_delivers(deployment, client):
    alice, alice_headers = await deployment.user()
    bob, _ = await deployment.add_user()
    chat = await conversation(deployment, alice_headers, [alice, bob])
    body = text_message(chat, alice)
    assert (await client.post("/v1/messages", json=body, headers=alice_headers)).status_code == 200
    seen = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = (
            await client.get("/v1/events", params={"since": seen, "timeout": 10}, headers=alice_headers, timeout=20)
        ).json()
        seen = page["next"]
        statuses = [event["data"] for event in page["events"] if event["type"] == "message.status"]
        if statuses:
            assert statuses[0]["status"] == "delivered" and statuses[0]["channel"]["name"] == "whatsapp"
            break
    else:
        raise AssertionError("the sender never heard the message delivered")
