"""Sending webhooks: the HTTP client (aiohttp, no redirects followed), the resolver the destination
checks use, and Standard Webhooks signatures (the `standardwebhooks` package)."""

from __future__ import annotations

import asyncio
import base64
import errno
import secrets
import socket
import time
from datetime import datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from standardwebhooks.webhooks import Webhook as StandardWebhook

from chat4all.application.ports.webhooks import HttpAnswer
from chat4all.domain.webhooks import refused_address

SECRET_BYTES = 32
# An answer's body is read (and dropped) up to this much, so that its connection can carry the next
# attempt: one left unread is closed, and every attempt then paid a new connection. A longer body
# is cut short, its connection closed.
DRAINED_BODY = 64 * 1024


async def _drain(response: aiohttp.ClientResponse) -> None:
    received = 0
    async for chunk in response.content.iter_any():
        received += len(chunk)
        if received > DRAINED_BODY:
            return


class PublicAddressesOnly(AbstractResolver):
    """Resolves as the system does, and refuses a name that resolves to any non-public address.
    The connection uses the addresses checked here, so a DNS answer that changes between the
    destination check before an attempt and its connection cannot steer it to a private address.
    (aiohttp does not resolve an IP literal: those are checked, once and for all, before the attempt.)"""

    def __init__(self) -> None:
        self._system = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._system.resolve(host, port, family)
        for result in found:
            if (reason := refused_address(result["host"])) is not None:
                refusal = f"{host} resolves to {result['host']}, {reason}; webhooks call public addresses only"
                raise OSError(errno.EACCES, refusal)  # aiohttp's error shows the strerror
        return found

    async def close(self) -> None:
        await self._system.close()


class AiohttpWebhookTransport:
    """One connection pool for every endpoint, connections kept alive between attempts; each attempt
    is bounded by `timeout` as a whole (connecting, sending, the answer and its first 64 KiB).

    aiohttp rather than httpx (the client's HTTP library): at hundreds of attempts a second, httpx's
    pool spent a quarter of the sending process's time choosing a connection (it checks every
    connection it holds, a system call each, for every request); aiohttp keeps a queue per host."""

    def __init__(self, max_connections: int = 256, *, public_only: bool = True) -> None:
        self._max_connections = max_connections
        self._public_only = public_only
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the event loop it serves
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, resolver=PublicAddressesOnly() if self._public_only else None
                ),
                timeout=aiohttp.ClientTimeout(total=None),  # each attempt has its own deadline
                trust_env=False,  # no proxy from the environment between the hub and the endpoints
                auto_decompress=False,
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> HttpAnswer:
        started = time.monotonic()

        def answer(status: int | None, error: str | None) -> HttpAnswer:
            return HttpAnswer(status, error, round((time.monotonic() - started) * 1000))

        try:
            async with asyncio.timeout(timeout):
                async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as response:
                    status = response.status
                    await _drain(response)
        except TimeoutError:
            return answer(None, f"no answer within {timeout:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as error:
            return answer(None, f"{type(error).__name__}: {error}"[:500] or type(error).__name__)
        if 300 <= status < 400:
            return answer(status, f"HTTP {status}: redirects are not followed")
        return answer(status, None if 200 <= status < 300 else f"HTTP {status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SystemResolver:
    """The system's resolver, off the event loop (`loop.getaddrinfo` runs it in a thread)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError):  # unknown, unreachable resolver, or not a host name
            return []
        return sorted({str(info[4][0]) for info in found})


class StandardWebhookSigner:
    def new_secret(self) -> str:
        return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()

    def sign(self, secret: str, message_id: str, timestamp: datetime, body: bytes) -> str:
        return StandardWebhook(secret).sign(message_id, timestamp, body)
