"""The Host names a request may use. Links the API hands out (`upload_url`, `download_url`) are
built from CHAT4ALL_PUBLIC_URL when it is set, else from the request's Host: without a check, a
client (or anyone who can put a link in front of a victim's client) chose the host those links
point at. A request naming a host that is not allowed is refused before any route runs. Which
names are allowed is the app's configuration (`HttpConfig.allowed_hosts`).

Litestar's AllowedHostsConfig is not used: it compares the whole header, port included, and is
applied per route, so the router's own 404/405 would still answer any Host."""

from __future__ import annotations

import json
from collections.abc import Iterable

from litestar.types import ASGIApp, Receive, Scope, Send

REFUSAL = "host_not_allowed"


def host_name(header: str) -> str:
    """`Host: Example.COM.:8000` -> `example.com`; `[::1]:8000` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, colon, port = header.rpartition(":")
    name = name if colon and port.isdigit() else header
    return name.rstrip(".")


class HostGuard:
    """Wraps the app's ASGI handler (inside Litestar, so the answer still gets the security headers)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed is None else frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            header = next((value for name, value in scope["headers"] if name == b"host"), None)
            # No Host at all (HTTP/1.0): links then name the address the request came in on.
            if header is not None and host_name(header.decode("latin-1")) not in self.allowed:
                await _refuse(send)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send) -> None:
    body = json.dumps(
        {
            "detail": "this server does not answer to that Host name; use one it is configured for "
            "(CHAT4ALL_ALLOWED_HOSTS, CHAT4ALL_PUBLIC_URL)",
            "error_code": REFUSAL,
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
