"""The webhook HTTP client against a real server on loopback: connections kept alive between
attempts, redirects not followed, a hanging endpoint cut off at the attempt's timeout."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from chat4all.adapters.webhook_http import AiohttpWebhookTransport
from tests.ports import low_port


@pytest.fixture
async def server():
    peers: set = set()
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        peers.add(request.transport.get_extra_info("peername"))
        hits.append(request.path)
        if request.path == "/moved":
            raise web.HTTPFound("/elsewhere")
        if request.path == "/hang":
            await asyncio.sleep(30)
        body = b"x" * 200_000 if request.path == "/big" else b"ok"
        return web.Response(body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = low_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    transport = AiohttpWebhookTransport()
    yield transport, f"http://127.0.0.1:{port}", peers, hits
    await transport.close()
    await runner.cleanup()


async def test_attempts_to_one_endpoint_share_a_connection(server) -> None:
    transport, base, peers, _ = server
    answers = [await transport.post(f"{base}/hook", b"{}", {}, 10) for _ in range(20)]
    assert {answer.status_code for answer in answers} == {200}
    assert len(peers) == 1
    assert (await transport.post(f"{base}/big", b"{}", {}, 10)).status_code == 200


async def test_a_redirect_is_a_failure_and_not_followed(server) -> None:
    transport, base, _, hits = server
    answer = await transport.post(f"{base}/moved", b"{}", {}, 10)
    assert answer.status_code == 302 and "not followed" in answer.error
    assert hits == ["/moved"]


async def test_an_endpoint_that_never_answers_fails_at_the_timeout(server) -> None:
    transport, base, _, _ = server
    answer = await transport.post(f"{base}/hang", b"{}", {}, 0.5)
    assert answer.status_code is None and "no answer within 0.5 s" in answer.error
    assert 450 <= answer.latency_ms < 2000


async def test_a_name_resolving_to_a_private_address_is_refused_at_the_connection(server) -> None:
    # The name is checked before each attempt too; this is the answer that changed in between.
    _, base, _, hits = server
    by_name = base.replace("127.0.0.1", "localhost")
    public_only = AiohttpWebhookTransport(public_only=True)
    try:
        refused = await public_only.post(f"{by_name}/hook", b"{}", {}, 10)
    finally:
        await public_only.close()
    assert refused.status_code is None and "resolves to 127.0.0.1" in refused.error
    assert hits == []
    allowed = AiohttpWebhookTransport(public_only=False)
    try:
        assert (await allowed.post(f"{by_name}/hook", b"{}", {}, 10)).status_code == 200
    finally:
        await allowed.close()
    assert hits == ["/hook"]
