"""Read receipts, unread counts, last messages and history cursors over HTTP, on both profiles."""

from __future__ import annotations

import asyncio
import uuid

from tests.integration.http.helpers import conversation, text_message
from tests.integration.http.test_auth_http import assert_error


async def send(client, headers, conversation_id: str, sender: str, text: str = "hi", **extra) -> str:
    body = text_message(conversation_id, sender, text, **extra)
    response = await client.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return body["message_id"]


async def mark_read(client, headers, conversation_id: str, up_to: str):
    return await client.post(f"/v1/conversations/{conversation_id}/read", json={"up_to": up_to}, headers=headers)


async def listed(client, headers) -> dict[str, dict]:
    body = (await client.get("/v1/conversations", headers=headers)).json()
    return {each["conversation_id"]: each for each in body["conversations"]}


async def test_reading_advances_only_and_lowers_the_unread_count(deployment, client):
    alice, alice_headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    chat = await conversation(deployment, alice_headers, [alice, bob])
    sent = [await send(client, alice_headers, chat, alice, f"m{index}") for index in range(3)]
    assert (await listed(client, bob_headers))[chat]["unread_count"] == 3
    assert (await listed(client, alice_headers))[chat]["unread_count"] == 0  # one's own messages are never unread

    up_to_second = await mark_read(client, bob_headers, chat, sent[1])
    assert up_to_second.status_code == 200, up_to_second.text
    assert {key: up_to_second.json()[key] for key in ("up_to", "position", "unread_count", "advanced")} == {
        "up_to": sent[1], "position": 2, "unread_count": 1, "advanced": True,
    }
    older = await mark_read(client, bob_headers, chat, sent[0])
    assert older.status_code == 200
    assert {key: older.json()[key] for key in ("up_to", "position", "unread_count", "advanced")} == {
        "up_to": sent[1], "position": 2, "unread_count": 1, "advanced": False,
    }
    assert (await listed(client, bob_headers))[chat]["unread_count"] == 1
    assert (await mark_read(client, bob_headers, chat, sent[2])).json()["unread_count"] == 0
    assert (await listed(client, bob_headers))[chat]["unread_count"] == 0


async def test_marking_read_is_for_members_and_messages_of_that_conversation(deployment, client):
    alice, alice_headers = await deployment.user()
    bob, _ = await deployment.add_user()
    _, carol_headers = await deployment.user()
    chat = await conversation(deployment, alice_headers, [alice, bob])
    elsewhere = await conversation(deployment, alice_headers, [alice, (await deployment.add_user())[0]])
    message = await send(client, alice_headers, chat, alice)
    other = await send(client, alice_headers, elsewhere, alice)
    assert_error(await mark_read(client, carol_headers, chat, message), 403, "not_a_member")
    assert_error(await mark_read(client, alice_headers, chat, other), 404, "message_not_found")
    assert_error(await mark_read(client, alice_headers, chat, str(uuid.uuid4())), 404, "message_not_found")
    assert_error(await mark_read(client, alice_headers, str(uuid.uuid4()), message), 404, "conversation_not_found")
    assert_error(await client.post(f"/v1/conversations/{chat}/read", json={"up_to": "nope"}, headers=alice_headers), 400)
    assert_error(await client.post(f"/v1/conversations/{chat}/read", json={}, headers=alice_headers), 400)


async def test_a_message_shows_a_receipt_per_recipient_and_becomes_read_when_all_have_read_it(deployment, client):
    alice, alice_headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    carol, carol_headers = await deployment.user()
    group = await conversation(deployment, alice_headers, [alice, bob, carol], "group")
    message = await send(client, alice_headers, group, alice)
    shown = (await client.get(f"/v1/messages/{message}", headers=alice_headers)).json()
    assert sorted(receipt["recipient_id"] for receipt in shown["receipts"]) == sorted([bob, carol])
    assert all(receipt["read_at"] is None for receipt in shown["receipts"])
    await wait_until_delivered(client, alice_headers, message)

    await mark_read(client, bob_headers, group, message)
    after_bob = (await client.get(f"/v1/messages/{message}", headers=carol_headers)).json()
    assert after_bob["status"] == "delivered" and after_bob["read_by_all_at"] is None
    assert {r["recipient_id"]: r["read_at"] is not None for r in after_bob["receipts"]} == {bob: True, carol: False}
    await mark_read(client, carol_headers, group, message)
    after_all = (await client.get(f"/v1/messages/{message}", headers=alice_headers)).json()
    assert after_all["status"] == "read" and after_all["read_by_all_at"] is not None
    assert all(r["read_at"] and r["delivered_at"] for r in after_all["receipts"])


async def wait_until_delivered(client, headers, message_id: str) -> None:
    for _ in range(200):
        if (await client.get(f"/v1/messages/{message_id}", headers=headers)).json()["status"] == "delivered":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} was never delivered")


async def test_the_conversation_list_is_ordered_by_last_activity_and_shows_the_last_message(deployment, client):
    alice, alice_headers = await deployment.user()
    others = [(await deployment.add_user())[0] for _ in range(3)]
    chats = [await conversation(deployment, alice_headers, [alice, other]) for other in others]
    last_words = {}
    for chat in (chats[1], chats[0], chats[2], chats[0]):
        last_words[chat] = await send(client, alice_headers, chat, alice, f"latest in {chat}")
    body = (await client.get("/v1/conversations", headers=alice_headers)).json()
    assert [each["conversation_id"] for each in body["conversations"]] == [chats[0], chats[2], chats[1]]
    for each in body["conversations"]:
        assert each["last_message"]["message_id"] == last_words[each["conversation_id"]]
        assert each["last_message"]["payload"] == {"type": "text", "text": f"latest in {each['conversation_id']}"}
    quiet = await conversation(deployment, alice_headers, [alice, (await deployment.add_user())[0]])
    assert (await listed(client, alice_headers))[quiet]["last_message"] is None


async def test_history_pages_by_cursor_both_ways_with_the_total_and_offset_kept(deployment, client):
    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    chat = await conversation(deployment, headers, [alice, bob])
    sent = [await send(client, headers, chat, alice, f"m{index}") for index in range(7)]
    path = f"/v1/conversations/{chat}/messages"

    def ids(page: dict) -> list[str]:
        return [message["message_id"] for message in page["messages"]]

    first = (await client.get(path, params={"limit": 3}, headers=headers)).json()
    assert (ids(first), first["total"], first["offset"], first["before"]) == (sent[:3], 7, 0, None)
    second = (await client.get(path, params={"limit": 3, "after": first["after"]}, headers=headers)).json()
    assert (ids(second), second["offset"]) == (sent[3:6], 3)
    third = (await client.get(path, params={"limit": 3, "after": second["after"]}, headers=headers)).json()
    assert (ids(third), third["offset"], third["after"]) == (sent[6:], 6, None)
    back = (await client.get(path, params={"limit": 3, "before": third["before"]}, headers=headers)).json()
    assert (ids(back), back["offset"]) == (sent[3:6], 3)
    by_offset = (await client.get(path, params={"limit": 2, "offset": 5}, headers=headers)).json()
    assert (ids(by_offset), by_offset["total"], by_offset["offset"]) == (sent[5:], 7, 5)

    assert_error(await client.get(path, params={"after": "not-a-cursor"}, headers=headers), 400, "invalid_cursor")
    assert_error(await client.get(path, params={"after": first["after"], "offset": 1}, headers=headers), 400)
    assert_error(await client.get(path, params={"after": first["after"], "before": first["after"]}, headers=headers), 400)
