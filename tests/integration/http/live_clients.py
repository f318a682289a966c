"""Clients of the three transports, as an application would write them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

WAIT = 10.0  # seconds a test waits for what should come at once


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored(frames: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(seq, type) of the stored events among frames."""
    return [(frame["seq"], frame["type"]) for frame in frames if "seq" in frame]


@asynccontextmanager
async def socket(url: str, token: str | None = None, *, since: int | None | str = "skip", **options) -> AsyncIterator[ClientConnection]:
    """A WebSocket authenticated by header (`token`), past its `ready` frame; resumed after `since` unless "skip"."""
    headers = bearer(token) if token is not None else None
    async with websockets.connect(url, additional_headers=headers, open_timeout=WAIT, **options) as ws:
        ready = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert ready["type"] == "ready", ready
        if since != "skip":
            await ws.send(json.dumps({"type": "resume", "since": since}))
        yield ws


async def frames(ws: ClientConnection, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
    """The next `count` frames."""
    received = []
    deadline = time.monotonic() + timeout
    while len(received) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"got {len(received)} of {count} frames: {received}"
        received.append(json.loads(await asyncio.wait_for(ws.recv(), remaining)))
    return received


async def nothing_more(ws: ClientConnection, within: float = 1.0) -> None:
    try:
        frame = await asyncio.wait_for(ws.recv(), within)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame {frame}")


class EventStream:
    """A Server-Sent Events stream, parsed: each event as (id, event, data)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments = 0

    async def next(self, timeout: float = WAIT) -> dict[str, Any]:
        return await asyncio.wait_for(self._next(), timeout)

    async def take(self, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        return [await self.next(timeout) for _ in range(count)]

    async def connected(self) -> None:
        """Waits for the stream's first line, a comment sent once the server listens."""
        first = await asyncio.wait_for(anext(self._lines), WAIT)
        assert first == ": connected", first
        assert await asyncio.wait_for(anext(self._lines), WAIT) == ""

    async def _next(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        async for line in self._lines:
            if not line:
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            fields[name] = json.loads(value.strip()) if name == "data" else value.strip()
        raise EOFError(f"the stream ended; last partial event {fields}")


@asynccontextmanager
async def event_stream(client: httpx.AsyncClient, token: str, *, since: int | None = None,
                       last_event_id: str | None = None) -> AsyncIterator[EventStream]:
    headers = bearer(token)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params = {} if since is None else {"since": since}
    async with client.stream("GET", "/v1/events/stream", headers=headers, params=params, timeout=60) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        stream = EventStream(response)
        await stream.connected()
        yield stream


async def poll_all(client: httpx.AsyncClient, token: str, since: int, count: int) -> list[dict[str, Any]]:
    """Long-polls from `since` until `count` events came."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT
    while len(events) < count:
        assert time.monotonic() < deadline, f"got {len(events)} of {count} events"
        answer = await client.get("/v1/events", params={"since": since, "timeout": 5}, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        events += body["events"]
        since = body["next"]
    return events


async def send_text(client: httpx.AsyncClient, token: str, sender: str, conversation_id: str, text: str = "hi") -> str:
    body = {"message_id": str(uuid.uuid4()), "conversation_id": conversation_id, "from": sender,
            "channels": ["whatsapp"], "payload": {"type": "text", "text": text}}
    answer = await client.post("/v1/messages", json=body, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return body["message_id"]


async def start_conversation(client: httpx.AsyncClient, token: str, members: list[str], type_: str = "private") -> str:
    answer = await client.post("/v1/conversations", json={"type": type_, "members": members}, headers=bearer(token))
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["conversation_id"]


async def last_seq(client: httpx.AsyncClient, token: str) -> int:
    """Where the user's log ends now (a long poll without `since` starts there)."""
    return (await client.get("/v1/events", headers=bearer(token))).json()["next"]
