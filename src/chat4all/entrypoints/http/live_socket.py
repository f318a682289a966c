"""One authenticated WebSocket: a sender that sends the feed's frames, and beside it a receiver
for the client's frames (a handler that only sent would not notice the client leaving).

Client frames: `{"type": "resume", "since": N | null}` (start, or restart, the feed after N;
null: from now), `{"type": "typing", "conversation_id": "..."}`, `{"type": "ping"}` (answered
with `{"type": "pong"}`). Nothing is sent before the first `resume` but `{"type": "ready"}`.
A frame the server cannot use is answered with an `error` frame; the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from uuid import UUID

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from chat4all.application.live import LiveSession
from chat4all.application.live_feed import Ended, Resync, ResyncReason
from chat4all.application.typing_notices import SendTyping
from chat4all.domain.errors import DomainError, InvalidInput
from chat4all.domain.events import UserEvent
from chat4all.entrypoints.http.live_frames import encode, error_json, frame_json
from chat4all.entrypoints.http.ws_protocol import LAST_WORDS

CLOSE_UNAUTHENTICATED = 4401  # no valid token in time, or the token expired or was revoked
CLOSE_TOO_SLOW = 4408  # the client did not keep up: reconnect and resume
CLOSE_BY_END = {"server_restarting": 1012}  # WebSocket's "service restart"; else 4401
MAX_CURSOR = 2**63 - 1

Close = tuple[int, str]
TOO_SLOW: Close = (CLOSE_TOO_SLOW, "too slow: reconnect and resume from the last seq received")


class LiveSocket:
    def __init__(self, socket: WebSocket, session: LiveSession, send_typing: SendTyping, send_timeout: float) -> None:
        self._socket = socket
        self._session = session
        self._send_typing = send_typing
        self._send_timeout = send_timeout
        self._sending = asyncio.Lock()
        self._delivered: int | None = None  # the seq of the last stored event handed to the socket

    async def run(self) -> None:
        """Until the client leaves, or the server ends the connection (and closes it)."""
        await self._send({"type": "ready", "user_id": str(self._session.user_id)})
        close = await self._serve()
        if close is TOO_SLOW:
            await self._give_up()
        elif close is not None:
            await self._socket.close(*close)

    async def _serve(self) -> Close | None:
        receiver = asyncio.create_task(self._receive_frames())
        sender = asyncio.create_task(self._send_feed())
        done, pending = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, TimeoutError):
                await task
        for task in done:
            error = task.exception()
            if isinstance(error, TimeoutError):
                return TOO_SLOW
            if error is not None and not isinstance(error, WebSocketDisconnect):
                raise error
        return sender.result() if sender in done else None

    async def _send(self, document: dict[str, Any]) -> None:
        """Raises TimeoutError when the client has not taken it within the send timeout."""
        async with self._sending:
            # A timeout scope, not wait_for, which on Python 3.11 wraps every frame's send in a task.
            async with asyncio.timeout(self._send_timeout):
                await self._socket.send_data(encode(document))

    async def _send_feed(self) -> Close | None:
        feed = self._session.feed
        while True:
            frame = await feed.next()
            assert frame is not None  # no timeout: WebSocket pings, not frames, keep the connection alive
            if isinstance(frame, Resync) and frame.reason is ResyncReason.TOO_SLOW:
                return TOO_SLOW
            await self._send(frame_json(frame))
            if isinstance(frame, UserEvent):
                self._delivered = frame.seq
            elif isinstance(frame, Ended):
                return CLOSE_BY_END.get(frame.code, CLOSE_UNAUTHENTICATED), frame.code
            # A cursor_expired resync keeps the socket: the client reloads, then sends `resume`.

    async def _give_up(self) -> None:
        """The client stopped taking its frames: a `resync` frame after the last event it was sent,
        then the close, both past the flow control (see `ws_protocol`)."""
        resync = {
            "type": "resync",
            "reason": ResyncReason.TOO_SLOW.value,
            "resume_from": self._delivered or 0,
            "detail": "the connection did not keep up with its events; reconnect and resume from the last seq received",
        }
        await self._socket.send({"type": "websocket.send", "text": encode(resync), LAST_WORDS: True})  # type: ignore[typeddict-unknown-key]
        await self._socket.send({"type": "websocket.close", "code": CLOSE_TOO_SLOW, "reason": "too_slow", LAST_WORDS: True})  # type: ignore[typeddict-unknown-key]

    async def _receive_frames(self) -> None:
        while True:
            message = await self._socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._send(error_json("invalid_frame", "send JSON text frames"))
                continue
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        fields: dict[str, Any] = frame if isinstance(frame, dict) else {}
        kind = fields.get("type")
        try:
            if kind == "resume":
                since = _cursor(fields.get("since"))
                self._session.feed.resume(since)
                self._delivered = since
            elif kind == "typing":
                await self._send_typing.execute(self._session.user_id, _conversation_id(fields.get("conversation_id")))
            elif kind == "ping":
                await self._send({"type": "pong"})
            else:
                raise _invalid('expected a JSON object whose "type" is resume, typing or ping')
        except DomainError as error:
            await self._send(error_json(error.code, error.detail))


def _invalid(detail: str) -> DomainError:
    return InvalidInput(detail, code="invalid_frame")


def _cursor(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CURSOR:
        raise _invalid('"since" must be a seq (a whole number >= 0) or null')
    return value


def _conversation_id(value: object) -> UUID:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return UUID(value)
    raise _invalid('"conversation_id" must be a conversation id')
