"""The three transports of users' events, on real servers of both profiles: the same events in the
same order, resuming without loss or repeat, the end of a connection whose token is revoked, and
what an expired cursor answers. In the distributed profile listeners are connected to API A and
every change is made through API B, another process."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
import websockets

from tests.integration.http.live_clients import (
    WAIT,
    bearer,
    event_stream,
    frames,
    last_seq,
    nothing_more,
    poll_all,
    send_text,
    socket,
    start_conversation,
    stored,
)


async def test_the_three_transports_deliver_the_same_events_in_the_same_order(live):
    (alice, alice_token), (bob, bob_token) = await live.user(), await live.user()
    start = await last_seq(live.client, bob_token)
    async with socket(live.ws_url(), bob_token, since=start) as ws, event_stream(live.client, bob_token) as sse:
        conversation = await start_conversation(live.sender, alice_token, [alice, bob])
        sent = [await send_text(live.sender, alice_token, alice, conversation, f"m{index}") for index in range(5)]
        read = await live.sender.post(f"/v1/conversations/{conversation}/read", json={"up_to": sent[-1]}, headers=bearer(bob_token))
        assert read.status_code == 200, read.text
        over_socket = await frames(ws, 7)
        over_stream = [event["data"] for event in await sse.take(7)]
        polled = await poll_all(live.client, bob_token, start, 7)

    expected = [(start + 1, "conversation.created")]
    expected += [(start + 2 + index, "message.created") for index in range(5)]
    expected += [(start + 7, "conversation.read")]
    assert stored(over_socket) == stored(over_stream) == stored(polled) == expected
    assert over_socket == over_stream == polled  # the same envelopes, byte for byte once parsed
    assert [event["data"]["message_id"] for event in polled[1:6]] == sent
    shown = (await live.client.get(f"/v1/messages/{sent[0]}", headers=bearer(bob_token))).json()
    assert {key: polled[1]["data"][key] for key in ("message_id", "from", "payload", "created_at")} == {
        key: shown[key] for key in ("message_id", "from", "payload", "created_at")
    }


async def test_a_socket_resumed_after_a_disconnect_gets_what_it_missed_once(live):
    (alice, alice_token), (bob, bob_token) = await live.user(), await live.user()
    start = await last_seq(live.client, bob_token)
    conversation = await start_conversation(live.sender, alice_token, [alice, bob])
    async with socket(live.ws_url(), bob_token, since=start) as ws:
        await send_text(live.sender, alice_token, alice, conversation)
        first = stored(await frames(ws, 2))
    missed = [await send_text(live.sender, alice_token, alice, conversation, f"offline {index}") for index in range(3)]
    async with socket(live.ws_url(), bob_token, since=first[-1][0]) as ws:
        again = await frames(ws, 3)
        await nothing_more(ws)
    assert first == [(start + 1, "conversation.created"), (start + 2, "message.created")]
    assert stored(again) == [(start + 3 + index, "message.created") for index in range(3)]
    assert [frame["data"]["message_id"] for frame in again] == missed


async def test_a_stream_resumes_after_the_last_event_id_it_was_sent(live):
    (alice, alice_token), (bob, bob_token) = await live.user(), await live.user()
    start = await last_seq(live.client, bob_token)
    conversation = await start_conversation(live.sender, alice_token, [alice, bob])
    async with event_stream(live.client, bob_token, since=start) as sse:
        seen = await sse.take(1)
    await send_text(live.sender, alice_token, alice, conversation, "while away")
    # As an EventSource reconnects: the URL it was opened with, and the id of the last event it saw.
    async with event_stream(live.client, bob_token, since=start, last_event_id=seen[-1]["id"]) as sse:
        resumed = await sse.next()
        with pytest.raises(TimeoutError):
            await sse.next(timeout=1.0)
    assert [(event["id"], event["event"]) for event in seen] == [(str(start + 1), "conversation.created")]
    assert (resumed["id"], resumed["event"], resumed["data"]["data"]["payload"]["text"]) == (
        str(start + 2), "message.created", "while away",
    )


async def test_logging_out_closes_the_callers_sockets_with_4401_and_ends_their_streams(live):
    _, token = await live.user()
    _, other_token = await live.user()
    async with socket(live.ws_url(), token, since=None) as by_header, event_stream(live.client, token) as sse:
        async with websockets.connect(live.ws_url(), open_timeout=WAIT) as by_frame:
            await by_frame.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await by_frame.recv())["type"] == "ready"
            async with socket(live.ws_url(), other_token, since=None) as untouched:
                assert (await live.sender.post("/auth/logout", headers=bearer(token))).status_code == 204
                # Checked every few seconds; through another process once its token cache lets go.
                for ws in (by_header, by_frame):
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        while True:
                            last = json.loads(await asyncio.wait_for(ws.recv(), 3 * WAIT))
                    assert closed.value.rcvd.code == 4401
                    assert last == {"type": "error", "error_code": "invalid_token", "detail": last["detail"]}
                ended = await sse.next(timeout=3 * WAIT)
                assert (ended["event"], ended["data"]["error_code"]) == ("error", "invalid_token")
                await untouched.send(json.dumps({"type": "ping"}))
                assert json.loads(await untouched.recv()) == {"type": "pong"}  # another user's token: still open


async def test_a_socket_without_a_valid_token_is_closed_with_4401(live):
    _, token = await live.user()
    async with websockets.connect(live.ws_url() + f"?access_token={token}", open_timeout=WAIT) as in_url:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(in_url.recv(), WAIT)
        assert closed.value.rcvd.code == 4401  # at once: a token in a URL is refused, never read
    async with websockets.connect(live.ws_url(), additional_headers=bearer("not-a-token"), open_timeout=WAIT) as wrong:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(wrong.recv(), WAIT)
        assert closed.value.rcvd.code == 4401
    async with websockets.connect(live.ws_url(), open_timeout=WAIT) as silent:
        began = asyncio.get_running_loop().time()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(silent.recv(), WAIT)
        assert closed.value.rcvd.code == 4401
        assert 4.5 <= asyncio.get_running_loop().time() - began < WAIT  # the auth frame's 5 seconds


async def test_an_expired_cursor_answers_410_on_the_long_poll_and_resync_on_the_streams(live):
    from chat4all.application.events import PurgeEvents

    (alice, alice_token), (bob, bob_token) = await live.user(), await live.user()
    conversation = await start_conversation(live.sender, alice_token, [alice, bob])
    await send_text(live.sender, alice_token, alice, conversation)
    last = await last_seq(live.client, bob_token)
    purge = PurgeEvents(live.hub.recipient.purge_events.log, FixedClock(datetime.now(UTC) + timedelta(seconds=1)), timedelta(0))
    await purge.execute()  # retention ran: everything up to now is gone

    expired = await live.client.get("/v1/events", params={"since": 0}, headers=bearer(bob_token))
    assert expired.status_code == 410
    assert (expired.json()["error_code"], expired.json()["resume_from"]) == ("cursor_expired", last)
    assert (await live.client.get("/v1/events", params={"since": last}, headers=bearer(bob_token))).json() == {
        "events": [], "next": last
    }
    async with event_stream(live.client, bob_token, since=0) as sse:
        resync = await sse.next()
        with pytest.raises(EOFError):
            await sse.next()
    assert (resync["event"], resync["id"], resync["data"]["reason"]) == ("resync", str(last), "cursor_expired")
    async with socket(live.ws_url(), bob_token, since=0) as ws:
        told = await frames(ws, 1)
        await ws.send(json.dumps({"type": "resume", "since": told[0]["resume_from"]}))  # after reloading over REST
        await send_text(live.sender, alice_token, alice, conversation, "after the resync")
        (after,) = await frames(ws, 1)
    assert told == [{"type": "resync", "reason": "cursor_expired", "resume_from": last, "detail": told[0]["detail"]}]
    assert (after["seq"], after["data"]["payload"]["text"]) == (last + 1, "after the resync")


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now
