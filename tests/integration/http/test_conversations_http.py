from __future__ import annotations

import uuid

from tests.integration.http.test_auth_http import assert_error


async def test_private_conversation_is_created_once_per_pair(deployment, client):
    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    first = await client.post("/v1/conversations", json={"type": "private", "members": [alice, bob]}, headers=headers)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["type"] == "private" and set(body["members"]) == {alice, bob}
    again = await client.post("/v1/conversations", json={"type": "private", "members": [bob, alice]}, headers=headers)
    assert again.status_code == 200
    assert again.json()["conversation_id"] == body["conversation_id"]


async def test_group_with_metadata(deployment, client):
    alice, headers = await deployment.user()
    others = [(await deployment.add_user())[0] for _ in range(2)]
    response = await client.post(
        "/v1/conversations",
        json={"type": "group", "members": [alice, *others], "metadata": {"name": "Falcon", "description": "launch"}},
        headers=headers,
    )
    assert response.status_code == 201
    assert response.json()["metadata"] == {"name": "Falcon", "description": "launch"}


async def test_conversation_membership_rules(deployment, client):
    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    carol, _ = await deployment.add_user()
    cases = [
        ({"type": "private", "members": [alice]}, 400),
        ({"type": "private", "members": [alice, bob, carol]}, 400),
        ({"type": "private", "members": [alice, alice]}, 400),
        ({"type": "group", "members": [alice, bob]}, 400),
        ({"type": "group", "members": [alice, bob, str(uuid.uuid4())]}, 400),
        ({"type": "private", "members": [bob, carol]}, 403),
        ({"type": "channel", "members": [alice, bob]}, 400),
        ({"type": "private", "members": [alice, "not-a-uuid"]}, 400),
    ]
    for body, status in cases:
        assert_error(await client.post("/v1/conversations", json=body, headers=headers), status)


async def test_group_of_101_members_is_rejected(deployment, client):
    alice, headers = await deployment.user()
    members = [alice, *(str(uuid.uuid4()) for _ in range(100))]
    assert_error(await client.post("/v1/conversations", json={"type": "group", "members": members}, headers=headers), 400)


async def test_listing_shows_only_my_conversations_newest_activity_first(deployment, client):
    alice, headers = await deployment.user()
    ids = []
    for _ in range(3):
        other, _ = await deployment.add_user()
        created = await client.post("/v1/conversations", json={"type": "private", "members": [alice, other]}, headers=headers)
        ids.append(created.json()["conversation_id"])
    await client.post(
        "/v1/messages",
        json={"message_id": str(uuid.uuid4()), "conversation_id": ids[0], "from": alice, "channels": ["whatsapp"],
              "payload": {"type": "text", "text": "bump"}},
        headers=headers,
    )
    page = (await client.get("/v1/conversations", params={"limit": 2}, headers=headers)).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
    assert [c["conversation_id"] for c in page["conversations"]] == [ids[0], ids[2]]
    rest = (await client.get("/v1/conversations", params={"limit": 2, "offset": 2}, headers=headers)).json()
    assert [c["conversation_id"] for c in rest["conversations"]] == [ids[1]]
    assert_error(await client.get("/v1/conversations", params={"limit": 0}, headers=headers), 400)
    assert_error(await client.get("/v1/conversations", params={"limit": 101}, headers=headers), 400)


async def test_only_members_see_a_conversation(deployment, client):
    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    _, outsider = await deployment.user()
    created = (await client.post("/v1/conversations", json={"type": "private", "members": [alice, bob]}, headers=headers)).json()
    url = f"/v1/conversations/{created['conversation_id']}"
    assert (await client.get(url, headers=headers)).json() == created
    assert_error(await client.get(url, headers=outsider), 403, "not_a_member")
    assert_error(await client.get(f"/v1/conversations/{uuid.uuid4()}", headers=headers), 404)
