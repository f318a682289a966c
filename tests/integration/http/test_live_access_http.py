"""The access matrix on the live transports: no event about a conversation, stored or ephemeral,
reaches anyone but its members, on any transport; typing goes to the other members only."""

from __future__ import annotations

import asyncio
import json

from tests.integration.http.live_clients import (
    bearer,
    event_stream,
    frames,
    last_seq,
    nothing_more,
    send_text,
    socket,
    start_conversation,
    stored,
)


async def typing(ws, conversation: str) -> None:
    await ws.send(json.dumps({"type": "typing", "conversation_id": conversation}))


async def test_no_event_about_a_conversation_reaches_an_outsider_on_any_transport(live):
    (alice, alice_token), (bob, bob_token), (_, carol_token) = [await live.user() for _ in range(3)]
    carol_start = await last_seq(live.client, carol_token)
    async with (
        socket(live.ws_url(), carol_token, since=carol_start) as carol_ws,
        event_stream(live.client, carol_token, since=carol_start) as carol_sse,
        socket(live.ws_url(), bob_token, since=None) as bob_ws,
        socket(live.ws_url(-1), alice_token, since=None) as alice_ws,
    ):
        conversation = await start_conversation(live.sender, alice_token, [alice, bob])
        message = await send_text(live.sender, alice_token, alice, conversation)
        await live.sender.post(f"/v1/conversations/{conversation}/read", json={"up_to": message}, headers=bearer(bob_token))
        await typing(alice_ws, conversation)
        bob_saw = await frames(bob_ws, 4)  # created, message, read, typing: the members do get them
        polled = await live.client.get("/v1/events", params={"since": carol_start, "timeout": 1}, headers=bearer(carol_token))
        await nothing_more(carol_ws)
        try:
            leaked = await carol_sse.next(timeout=1.0)
        except TimeoutError:
            leaked = None
    # Stored events in their order; the typing notice is live and may come before the last of them.
    assert [frame["type"] for frame in bob_saw if "seq" in frame] == ["conversation.created", "message.created", "conversation.read"]
    assert [frame["type"] for frame in bob_saw if "seq" not in frame] == ["typing"]
    assert polled.json() == {"events": [], "next": carol_start}
    assert leaked is None


async def test_a_member_who_left_a_group_hears_nothing_more_about_it(live):
    (alice, alice_token), (bob, bob_token), (dave, dave_token) = [await live.user() for _ in range(3)]
    group = await start_conversation(live.sender, alice_token, [alice, bob, dave], "group")
    left = await live.sender.delete(f"/v1/conversations/{group}/members/me", headers=bearer(dave_token))
    assert left.status_code == 204, left.text
    dave_start = await last_seq(live.client, dave_token)
    async with (
        socket(live.ws_url(), dave_token, since=dave_start) as dave_ws,
        socket(live.ws_url(), bob_token, since=None) as bob_ws,
        socket(live.ws_url(-1), alice_token, since=None) as alice_ws,
    ):
        await send_text(live.sender, alice_token, alice, group, "after dave left")
        await typing(alice_ws, group)
        assert sorted(frame["type"] for frame in await frames(bob_ws, 2)) == ["message.created", "typing"]
        await nothing_more(dave_ws)
        await typing(dave_ws, group)  # an outsider's typing is refused, and reaches nobody
        (refused,) = await frames(dave_ws, 1)
        await nothing_more(bob_ws)
    assert (refused["type"], refused["error_code"]) == ("error", "not_a_member")
    polled = await live.client.get("/v1/events", params={"since": dave_start}, headers=bearer(dave_token))
    assert polled.json()["events"] == []


async def test_typing_reaches_the_other_members_only_and_is_never_stored(live):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = [await live.user() for _ in range(3)]
    group = await start_conversation(live.sender, alice_token, [alice, bob, carol], "group")
    bob_start = await last_seq(live.client, bob_token)
    async with (
        socket(live.ws_url(-1), alice_token, since=None) as alice_ws,
        socket(live.ws_url(), bob_token, since=None) as bob_ws,
        event_stream(live.client, carol_token) as carol_sse,
    ):
        await typing(alice_ws, group)
        (notice,) = await frames(bob_ws, 1)
        over_stream = await carol_sse.next()
        await nothing_more(alice_ws)  # not to the typist
    assert "seq" not in notice and notice["type"] == "typing"
    assert (notice["data"]["conversation_id"], notice["data"]["user_id"]) == (group, alice)
    assert notice["data"]["until"] > notice["at"]
    assert ("id" not in over_stream, over_stream["event"], over_stream["data"]) == (True, "typing", notice)
    assert stored([notice]) == []
    polled = await live.client.get("/v1/events", params={"since": bob_start}, headers=bearer(bob_token))
    assert polled.json()["events"] == []  # never stored, so never replayed


async def test_typing_is_rate_limited_per_user_and_conversation(live):
    (alice, alice_token), (bob, bob_token) = [await live.user() for _ in range(2)]
    first = await start_conversation(live.sender, alice_token, [alice, bob])
    second = await start_conversation(live.sender, alice_token, [alice, bob, (await live.user())[0]], "group")
    async with socket(live.ws_url(-1), alice_token, since=None) as alice_ws, socket(live.ws_url(), bob_token, since=None) as bob_ws:
        for _ in range(5):  # a client sending one per keystroke
            await typing(alice_ws, first)
        await typing(alice_ws, second)  # another conversation has its own allowance
        notices = await frames(bob_ws, 2)
        await nothing_more(bob_ws)
        await asyncio.sleep(2.1)  # CHAT4ALL_EVENTS_TYPING_INTERVAL_MS: 2000 by default
        await typing(alice_ws, first)
        (later,) = await frames(bob_ws, 1)
    assert sorted(notice["data"]["conversation_id"] for notice in notices) == sorted([first, second])
    assert later["data"]["conversation_id"] == first
