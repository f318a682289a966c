from __future__ import annotations

import asyncio
import uuid

from tests.integration.http.helpers import conversation, text_message, upload_file, wait_for_status
from tests.integration.http.test_auth_http import assert_error


async def test_accepted_message_is_routed_and_delivered_with_its_history(deployment, client):
    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    conversation_id = await conversation(deployment, headers, [alice, bob])
    body = text_message(conversation_id, alice, channels=["whatsapp", "instagram"])
    response = await client.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"message_id": body["message_id"], "status": "accepted"}
    message = await wait_for_status(client, headers, body["message_id"])
    assert message["status"] == "delivered"
    assert message["deliveries"] == {"whatsapp": "delivered", "instagram": "delivered"}
    statuses = [(entry["status"], entry["channel"]) for entry in message["history"]]
    assert statuses[:2] == [("accepted", None), ("routed", None)]
    assert sorted(statuses[2:4]) == [("delivered", "instagram"), ("delivered", "whatsapp")]
    assert statuses[4:] == [("delivered", None)]
    assert message["from"] == alice and message["payload"] == {"type": "text", "text": "hello"}


async def test_all_channels_expands_to_every_connector(deployment, client):
    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    conversation_id = await conversation(deployment, headers, [alice, bob])
    body = text_message(conversation_id, alice, channels=["all"])
    await client.post("/v1/messages", json=body, headers=headers)
    message = await wait_for_status(client, headers, body["message_id"])
    assert sorted(message["channels"]) == ["instagram", "whatsapp"]
    assert message["status"] == "delivered"


async def test_sending_rules(deployment, client):
    alice, headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    carol, carol_headers = await deployment.user()
    conversation_id = await conversation(deployment, headers, [alice, bob])
    cases = [
        (headers, text_message(conversation_id, bob), 403),
        (carol_headers, text_message(conversation_id, carol), 403),
        (headers, text_message(str(uuid.uuid4()), alice), 404),
        (headers, text_message(conversation_id, alice, to=carol), 400),
        (headers, text_message(conversation_id, alice, to=alice), 400),
        (headers, text_message(conversation_id, alice, channels=[]), 400),
        (headers, text_message(conversation_id, alice, channels=["telegram"]), 400),
        (headers, text_message(conversation_id, alice, text=""), 400),
        (headers, text_message(conversation_id, alice, text="x" * 4097), 400),
        (headers, text_message(conversation_id, alice, priority="urgent"), 400),
        (headers, {**text_message(conversation_id, alice), "payload": {"type": "file", "file_id": str(uuid.uuid4())}}, 404),
    ]
    for who, body, status in cases:
        assert_error(await client.post("/v1/messages", json=body, headers=who), status)
    ok = text_message(conversation_id, alice, text="x" * 4096, to=bob, priority="high")
    assert (await client.post("/v1/messages", json=ok, headers=headers)).status_code == 200


async def test_same_message_id_is_idempotent_and_conflicts_on_other_content(deployment, client):
    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    conversation_id = await conversation(deployment, headers, [alice, bob])
    body = text_message(conversation_id, alice)
    first = await client.post("/v1/messages", json=body, headers=headers)
    again = await client.post("/v1/messages", json=body, headers=headers)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    changed = {**body, "payload": {"type": "text", "text": "something else"}}
    assert_error(await client.post("/v1/messages", json=changed, headers=headers), 409, "message_id_conflict")
    listing = (await client.get(f"/v1/conversations/{conversation_id}/messages", headers=headers)).json()
    assert listing["total"] == 1


async def test_concurrent_duplicates_create_exactly_one_message(deployment, client):
    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    conversation_id = await conversation(deployment, headers, [alice, bob])
    body = text_message(conversation_id, alice)
    responses = await asyncio.gather(*(client.post("/v1/messages", json=body, headers=headers) for _ in range(20)))
    assert {response.status_code for response in responses} == {200}
    assert len({response.text for response in responses}) == 1
    listing = (await client.get(f"/v1/conversations/{conversation_id}/messages", headers=headers)).json()
    assert listing["total"] == 1
    message = await wait_for_status(client, headers, body["message_id"])
    assert [entry["status"] for entry in message["history"]].count("accepted") == 1


async def test_listing_is_chronological_paginated_and_members_only(deployment, client):
    alice, headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    _, outsider = await deployment.user()
    conversation_id = await conversation(deployment, headers, [alice, bob])
    sent = []
    for index in range(5):
        body = text_message(conversation_id, alice, text=f"m{index}")
        await client.post("/v1/messages", json=body, headers=headers)
        sent.append(body["message_id"])
    url = f"/v1/conversations/{conversation_id}/messages"
    page = (await client.get(url, params={"limit": 3, "offset": 1}, headers=bob_headers)).json()
    assert page["total"] == 5 and page["limit"] == 3 and page["offset"] == 1
    assert [m["message_id"] for m in page["messages"]] == sent[1:4]
    assert page["messages"][0]["payload"]["text"] == "m1" and "deliveries" in page["messages"][0]
    assert_error(await client.get(url, headers=outsider), 403)
    assert_error(await client.get(url, params={"limit": 101}, headers=headers), 400)
    assert_error(await client.get(f"/v1/conversations/{uuid.uuid4()}/messages", headers=headers), 404)
    assert_error(await client.get(f"/v1/messages/{sent[0]}", headers=outsider), 403)
    assert_error(await client.get(f"/v1/messages/{uuid.uuid4()}", headers=headers), 404)


async def test_group_message_reaches_every_member(deployment, client):
    members = [await deployment.user() for _ in range(10)]
    sender, headers = members[0]
    conversation_id = await conversation(deployment, headers, [member for member, _ in members], "group")
    body = text_message(conversation_id, sender, channels=["whatsapp"])
    await client.post("/v1/messages", json=body, headers=headers)
    await wait_for_status(client, headers, body["message_id"])
    for _, member_headers in members:
        listing = (await client.get(f"/v1/conversations/{conversation_id}/messages", headers=member_headers)).json()
        assert [m["message_id"] for m in listing["messages"]] == [body["message_id"]]


async def test_file_message_rules_and_delivery(deployment, client):
    alice, headers = await deployment.user()
    bob, bob_headers = await deployment.user()
    carol, carol_headers = await deployment.user()
    conversation_id = await conversation(deployment, headers, [alice, bob])
    file_id = await upload_file(client, headers, b"report bytes" * 100, filename="report.txt")
    unfinished = await upload_file(client, headers, b"partial", complete=False)
    file_message = {**text_message(conversation_id, alice), "payload": {"type": "file", "file_id": file_id}}
    assert_error(
        await client.post("/v1/messages", json={**file_message, "message_id": str(uuid.uuid4()),
                                               "payload": {"type": "file", "file_id": unfinished}}, headers=headers),
        400, "file_not_completed",
    )
    carol_conversation = await conversation(deployment, carol_headers, [carol, bob])
    stolen = {**text_message(carol_conversation, carol), "payload": {"type": "file", "file_id": file_id}}
    assert_error(await client.post("/v1/messages", json=stolen, headers=carol_headers), 403)
    assert (await client.post("/v1/messages", json=file_message, headers=headers)).status_code == 200
    delivered = await wait_for_status(client, headers, file_message["message_id"])
    assert delivered["status"] == "delivered"
    assert delivered["payload"]["filename"] == "report.txt" and delivered["payload"]["file_size"] == 1200
    # bob received it, so bob may see and forward it; carol may not see it
    assert (await client.get(f"/v1/files/{file_id}", headers=bob_headers)).status_code == 200
    assert_error(await client.get(f"/v1/files/{file_id}", headers=carol_headers), 403)
