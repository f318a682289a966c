"""Distributed end to end: the API process a client is connected to is killed (SIGKILL); the client
reconnects to another one and resumes from its last seq, missing nothing and getting nothing twice."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.integration.http.live_clients import WAIT, frames, last_seq, send_text, socket, start_conversation, stored
from tests.integration.http.live_profiles import live_deployment

pytestmark = pytest.mark.services


async def test_a_client_whose_api_process_is_killed_resumes_on_another_with_nothing_missed(tmp_path):
    async with live_deployment("distributed", tmp_path) as deployment:
        (alice, alice_token), (bob, bob_token) = await deployment.user(), await deployment.user()
        start = await last_seq(deployment.client, bob_token)
        conversation = await start_conversation(deployment.sender, alice_token, [alice, bob])
        before = [await send_text(deployment.sender, alice_token, alice, conversation, f"before {n}") for n in range(3)]
        async with socket(deployment.ws_url(0), bob_token, since=start) as on_a:
            received = await frames(on_a, 4)
            api_a, _ = deployment.processes.running[0]
            api_a.kill()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(on_a.recv(), WAIT)
        during = [await send_text(deployment.sender, alice_token, alice, conversation, f"during {n}") for n in range(3)]
        async with socket(deployment.ws_url(1), bob_token, since=received[-1]["seq"]) as on_b:
            resumed = await frames(on_b, 3)
            after = await send_text(deployment.sender, alice_token, alice, conversation, "after")
            (live,) = await frames(on_b, 1)

    everything = received + resumed + [live]
    assert stored(everything) == [(start + 1, "conversation.created")] + [
        (start + 2 + n, "message.created") for n in range(7)
    ]
    assert [frame["data"]["message_id"] for frame in everything[1:]] == [*before, *during, after]
