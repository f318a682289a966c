"""Leaving a group over HTTP, on both profiles: afterwards the leaver is an outsider (403, as the
access matrix answers outsiders) and no delivery reaches them; a private conversation stays."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from chat4all.adapters.sql.tables import connector_sends
from tests.integration.http.helpers import conversation, text_message, wait_for_status
from tests.integration.http.test_auth_http import assert_error


async def reached(deployment, message_id: str) -> set[str]:
    """Whom the mock providers sent the message to, from their send ledger in the hub's database."""
    async with deployment.hub.adapters.uow.engine.connect() as connection:
        rows = await connection.execute(
            select(connector_sends.c.recipient_id).where(connector_sends.c.message_id == uuid.UUID(message_id))
        )
        return {str(recipient) for recipient in rows.scalars()}


async def send_and_wait(deployment, headers, body) -> set[str]:
    response = await deployment.client.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200, response.text
    delivered = await wait_for_status(deployment.client, headers, body["message_id"], timeout=30)
    assert delivered["status"] == "delivered", delivered
    return await reached(deployment, body["message_id"])


async def test_who_leaves_a_group_is_an_outsider_after_and_gets_no_more_deliveries(deployment, client):
    (alice, alice_auth), (bob, bob_auth), (carol, carol_auth) = [await deployment.user() for _ in range(3)]
    group = await conversation(deployment, alice_auth, [alice, bob, carol], "group")
    # Delivered to both before: whatever the processes keep about the group, they have it now.
    before = text_message(group, alice)
    assert await send_and_wait(deployment, alice_auth, before) == {bob, carol}

    response = await client.delete(f"/v1/conversations/{group}/members/me", headers=bob_auth)
    assert response.status_code == 204, response.text
    assert response.content == b""

    for denied in (
        await client.get(f"/v1/conversations/{group}", headers=bob_auth),
        await client.get(f"/v1/conversations/{group}/messages", headers=bob_auth),
        await client.get(f"/v1/messages/{before['message_id']}", headers=bob_auth),
        await client.post("/v1/messages", json=text_message(group, bob), headers=bob_auth),
        await client.delete(f"/v1/conversations/{group}/members/me", headers=bob_auth),  # leaving again
    ):
        assert_error(denied, 403, "not_a_member")
    mine = (await client.get("/v1/conversations", headers=bob_auth)).json()
    assert group not in [each["conversation_id"] for each in mine["conversations"]]
    shown = (await client.get(f"/v1/conversations/{group}", headers=alice_auth)).json()
    assert shown["members"] == [alice, carol]

    assert await send_and_wait(deployment, alice_auth, text_message(group, alice)) == {carol}
    assert await send_and_wait(deployment, carol_auth, text_message(group, carol)) == {alice}
    to_bob = client.post("/v1/messages", json=text_message(group, alice, to=bob), headers=alice_auth)
    assert_error(await to_bob, 400, "invalid_recipient")


async def test_a_private_conversation_cannot_be_left_and_outsiders_cannot_leave(deployment, client):
    (alice, alice_auth), (bob, _), (carol, carol_auth) = [await deployment.user() for _ in range(3)]
    pair = await conversation(deployment, alice_auth, [alice, bob])
    body = assert_error(await client.delete(f"/v1/conversations/{pair}/members/me", headers=alice_auth), 409)
    assert body["error_code"] == "cannot_leave_private" and "private" in body["detail"]
    assert (await client.get(f"/v1/conversations/{pair}", headers=alice_auth)).json()["members"] == [alice, bob]
    assert_error(await client.delete(f"/v1/conversations/{pair}/members/me", headers=carol_auth), 403, "not_a_member")
    unknown = f"/v1/conversations/{uuid.uuid4()}/members/me"
    assert_error(await client.delete(unknown, headers=alice_auth), 404, "conversation_not_found")
    assert_error(await client.delete(f"/v1/conversations/{pair}/members/me"), 401)


async def test_every_member_may_leave_and_the_group_then_answers_nobody(deployment, client):
    people = [await deployment.user() for _ in range(3)]
    group = await conversation(deployment, people[0][1], [user_id for user_id, _ in people], "group")
    for _, auth in people:
        assert (await client.delete(f"/v1/conversations/{group}/members/me", headers=auth)).status_code == 204
    for _, auth in people:
        assert_error(await client.get(f"/v1/conversations/{group}/messages", headers=auth), 403)
