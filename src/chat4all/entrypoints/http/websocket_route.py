"""`/v1/events/ws`: a user's events over a WebSocket.

Authentication: the `Authorization: Bearer <token>` header or, for browsers (which cannot set
headers on a WebSocket), a first frame `{"type": "auth", "token": "..."}` within 5 seconds.
Tokens are never read from the URL: a URL ends up in logs and browser history. Close codes:
4401 no valid token (or it expired or was revoked), 4429 the user holds too many live
connections, 1013 the server holds its maximum, 4408 the client did not keep up (reconnect and
resume), 1009 a frame larger than the server accepts.
"""

from __future__ import annotations

import asyncio
import json

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from chat4all.application.live import LiveEvents, ServerBusy, TooManyConnections
from chat4all.application.typing_notices import SendTyping
from chat4all.domain.errors import NotAuthenticated
from chat4all.entrypoints.http.config import HttpConfig
from chat4all.entrypoints.http.dependencies import MAX_TOKEN_LENGTH
from chat4all.entrypoints.http.live_socket import CLOSE_UNAUTHENTICATED, LiveSocket

AUTH_TIMEOUT = 5.0
CLOSE_TOO_MANY = 4429
CLOSE_SERVER_BUSY = 1013  # "try again later"
TOKEN_IN_URL = ("token", "access_token", "authorization")


@websocket("/v1/events/ws")
async def events_socket(
    socket: WebSocket,
    live_events: NamedDependency[LiveEvents],
    send_typing: NamedDependency[SendTyping],
    http_config: NamedDependency[HttpConfig],
) -> None:
    await socket.accept()
    try:
        secret = await credentials(socket)
        if secret is None:
            await socket.close(CLOSE_UNAUTHENTICATED, "send 'Authorization: Bearer <token>' or an auth frame first")
            return
        refused = await _serve(socket, secret, live_events, send_typing, http_config.events_send_timeout)
        if refused is not None:
            await socket.close(*refused)
    except WebSocketDisconnect:
        pass  # the client left: nothing to close


async def _serve(
    socket: WebSocket, secret: str, live: LiveEvents, send_typing: SendTyping, send_timeout: float
) -> tuple[int, str] | None:
    try:
        async with live.connect(secret) as session:
            await LiveSocket(socket, session, send_typing, send_timeout).run()
            return None
    except NotAuthenticated as error:
        return CLOSE_UNAUTHENTICATED, error.code
    except TooManyConnections as error:
        return CLOSE_TOO_MANY, error.code
    except ServerBusy as error:
        return CLOSE_SERVER_BUSY, error.code


async def credentials(socket: WebSocket) -> str | None:
    """The bearer token from the header, else from the first frame (None: none, or not in time)."""
    if any(name in socket.query_params for name in TOKEN_IN_URL):
        return None  # refused outright rather than ignored: the token has leaked into a URL
    header = socket.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        return _valid(secret.strip()) if scheme.lower() == "bearer" else None
    try:
        message = await asyncio.wait_for(socket.receive(), AUTH_TIMEOUT)
    except TimeoutError:
        return None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(detail="the client left before authenticating")
    try:
        frame = json.loads(message.get("text") or "")
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("type") != "auth" or not isinstance(frame.get("token"), str):
        return None
    return _valid(frame["token"])


def _valid(secret: str) -> str | None:
    return secret if secret and len(secret) <= MAX_TOKEN_LENGTH else None
