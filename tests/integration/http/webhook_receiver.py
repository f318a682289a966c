"""A real HTTP receiver on loopback for webhook tests, verifying Standard Webhooks signatures with
its own HMAC (not the package the server signs with)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

from aiohttp import web


def signature_valid(secret: str, headers, body: bytes) -> bool:
    """Standard Webhooks: `v1,<base64 HMAC-SHA256 over "id.timestamp.body">` with the base64 key after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.split(",", 1)[1] for part in headers["webhook-signature"].split(" ") if part.startswith("v1,")]
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
    return fresh and any(hmac.compare_digest(expected, each) for each in offered)


class Receiver:
    """Answers 200 unless told otherwise (`answer` picks the status per request, `hang` never answers);
    `stop()` and `start()` take it down and back on the same port."""

    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.received: list[dict] = []  # every request that got a 2xx: {id, body, valid, at}
        self.requests = 0
        self.answer: Callable[[int], int] = lambda number: 200
        self.hang = False
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._released = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        if self.hang:
            await self._released.wait()
        status = self.answer(self.requests)
        if 200 <= status < 300:
            self.received.append(
                {
                    "id": request.headers["webhook-id"],
                    "body": json.loads(body),
                    "valid": signature_valid(self.secret, request.headers, body),
                    "at": time.monotonic(),
                }
            )
        return web.Response(status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._released = asyncio.Event()

    def ids(self) -> list[str]:
        return [each["id"] for each in self.received]

    def seqs(self) -> set[int]:
        return {each["body"]["seq"] for each in self.received}

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(set(self.ids())) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(set(self.ids()))} of {count} deliveries arrived in {timeout} s")
            await asyncio.sleep(0.05)
