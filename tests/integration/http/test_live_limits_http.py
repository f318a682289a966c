"""Limits of the live transports: connections per user and per process, and a client that stops
reading its events (dropped with a resync hint, then resumed without loss)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket as sockets
import time

import pytest
import websockets

from tests.integration.http.live_clients import (
    WAIT,
    bearer,
    event_stream,
    frames,
    last_seq,
    send_text,
    socket,
    start_conversation,
)
from tests.integration.http.live_profiles import live_deployment

PER_USER = 10  # CHAT4ALL_EVENTS_MAX_CONNECTIONS_PER_USER's default


async def closed_with(ws) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_user_holds_at_most_ten_live_connections(live):
    _, token = await live.user()
    _, someone_else = await live.user()
    async with contextlib.AsyncExitStack() as held:
        first = await held.enter_async_context(socket(live.ws_url(), token, since=None))
        for _ in range(PER_USER - 2):
            await held.enter_async_context(socket(live.ws_url(), token, since=None))
        async with event_stream(live.client, token):
            async with websockets.connect(live.ws_url(), additional_headers=bearer(token), open_timeout=WAIT) as refused:
                assert await closed_with(refused) == (4429, "too_many_connections")
            over = await live.client.get("/v1/events/stream", headers=bearer(token))
            assert (over.status_code, over.json()["error_code"]) == (429, "too_many_connections")
            async with socket(live.ws_url(), someone_else, since=None):
                pass  # the limit is per user
            await first.send(json.dumps({"type": "ping"}))
            assert json.loads(await first.recv()) == {"type": "pong"}  # those already open are kept
        async with socket(live.ws_url(), token, since=None):  # the stream closed: there is room again
            pass


async def test_past_the_process_limit_a_socket_is_closed_with_1013_and_a_stream_gets_503(tmp_path):
    async with live_deployment("embedded", tmp_path, {"CHAT4ALL_EVENTS_MAX_CONNECTIONS": "2"}) as small:
        (_, alice), (_, bob) = await small.user(), await small.user()
        async with socket(small.ws_url(), alice, since=None), event_stream(small.client, bob):
            async with websockets.connect(small.ws_url(), additional_headers=bearer(bob), open_timeout=WAIT) as refused:
                assert await closed_with(refused) == (1013, "server_busy")
            busy = await small.client.get("/v1/events/stream", headers=bearer(alice))
            assert (busy.status_code, busy.json()["error_code"]) == (503, "server_busy")
            assert busy.headers["retry-after"]


def stalled_connection(url: str) -> sockets.socket:
    """A TCP connection whose receive buffer is tiny: a client that reads nothing fills it at once."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    raw = sockets.socket()
    raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
    raw.connect((host, int(port)))
    return raw


async def test_a_client_that_stops_reading_is_dropped_with_a_resync_and_resumes_without_loss(live):
    (alice, alice_token), (bob, bob_token) = await live.user(), await live.user()
    conversation = await start_conversation(live.sender, alice_token, [alice, bob])
    start = await last_seq(live.client, bob_token)
    text = "x" * 4000
    async with socket(live.ws_url(), bob_token, since=start, sock=stalled_connection(live.ws_url()), max_queue=1) as ws:
        began = time.monotonic()
        sent = [await send_text(live.sender, alice_token, alice, conversation, text) for _ in range(120)]
        # CHAT4ALL_EVENTS_SLOW_CLIENT_SECONDS (10) after its buffers filled, the server gave up on it;
        # it keeps the last words for another 10 seconds, for a client that reads again.
        await asyncio.sleep(max(0.0, 14 - (time.monotonic() - began)))
        received = []
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
    *events, resync = received
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4408, "too_slow")
    assert [event["seq"] for event in events] == list(range(start + 1, start + 1 + len(events)))
    assert 0 < len(events) < len(sent)  # it was dropped before it had everything
    assert (resync["type"], resync["reason"], resync["resume_from"]) == ("resync", "too_slow", events[-1]["seq"])

    async with socket(live.ws_url(), bob_token, since=resync["resume_from"]) as again:
        rest = await frames(again, len(sent) - len(events))
    assert [event["seq"] for event in events + rest] == list(range(start + 1, start + 1 + len(sent)))
    assert [event["data"]["message_id"] for event in events + rest] == sent


async def test_a_stopping_server_ends_its_live_connections_instead_of_waiting_for_them(tmp_path):
    async with live_deployment("embedded", tmp_path) as stopping:
        _, token = await stopping.user()
        async with socket(stopping.ws_url(), token, since=None) as ws, event_stream(stopping.client, token) as sse:
            api, _ = stopping.processes.running[0]
            api.terminate()  # SIGTERM, as a rolling restart sends it
            ended = await sse.next()
            assert (ended["event"], ended["data"]["error_code"]) == ("error", "server_restarting")
            code, _ = await closed_with(ws)
            assert code == 1012  # "service restart": reconnect and resume
            began = time.monotonic()
            while api.poll() is None:
                assert time.monotonic() - began < WAIT, "the server kept waiting for its live connections"
                await asyncio.sleep(0.1)


async def test_a_socket_that_answers_the_servers_pings_stays_open_and_one_that_does_not_is_closed_with_1011(tmp_path):
    """The keep-alive period is a setting (15 s by default); two seconds keep this test short."""
    async with live_deployment("embedded", tmp_path, {"CHAT4ALL_EVENTS_KEEPALIVE_SECONDS": "2"}) as quick:
        (_, alice), (_, bob) = await quick.user(), await quick.user()
        async with socket(quick.ws_url(), alice, since=None, ping_interval=None) as answering:
            async with socket(quick.ws_url(), bob, since=None, ping_interval=None) as silent:
                silent.transport.pause_reading()  # its client reads nothing, so it sends no pong
                await asyncio.sleep(7.0)  # past two pings and their deadline
                silent.transport.resume_reading()
                assert (await closed_with(silent))[0] == 1011
            await answering.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(answering.recv(), WAIT)) == {"type": "pong"}
