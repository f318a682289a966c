"""The HTTP server's own defences, below the app: how long a client may take to send a request,
how many connections one process holds, and how malformed HTTP is answered.

uvicorn has a keep-alive timeout and a concurrency limit, but nothing bounds the time a client
takes to send its headers or its body: a socket that trickled a byte every few seconds stayed open
indefinitely. Its own refusals (malformed HTTP, the concurrency limit) are plain text without the
security headers. This protocol adds the missing timers and answers every refusal of its own in
the app's JSON error shape, with the same headers as the app's answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from chat4all.entrypoints.http.security_headers import HEADERS

# Request line and headers together; past this the answer is 431 (httptools itself sets no bound).
MAX_HEADER_BYTES = 64 * 1024
MALFORMED = (400, "the request is not valid HTTP/1.1", "malformed_request")
HEADERS_TOO_LARGE = (431, f"the request line and headers exceed {MAX_HEADER_BYTES} bytes", "headers_too_large")


class HeadersTooLarge(Exception):
    pass


class ConnectionLimits(Protocol):
    """How long a client may take, and how many connections one process holds (CHAT4ALL_HTTP_*)."""

    @property
    def header_timeout(self) -> float: ...

    @property
    def body_timeout(self) -> float: ...

    @property
    def max_connections(self) -> int: ...


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection. A read deadline runs while the server waits on the client: from the first
    byte of a request (or from the connection, before any) to the end of its headers, as one fixed
    deadline, then while its body arrives, as an idle timer that every received piece restarts, so
    a large upload on a slow link lives as long as it makes progress. Between requests uvicorn's
    keep-alive timer runs. Time the server itself spends (reading paused because the app has not
    consumed what came, a `100 Continue` not yet sent) is never held against the client."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._stalled: asyncio.TimerHandle | None = None  # armed while the client takes none of the answer
        self._header_bytes = 0
        self._received_any = False
        self._refusal = MALFORMED

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.logger.warning("connection refused: %d open, the limit is %d", len(self.connections) - 1, self.limits.max_connections)
            self.refuse(503, "the server holds too many connections; retry shortly", "too_many_connections", retry_after=1)
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client has not taken what was sent (the buffers are full): an answer it takes
        nothing of for `body_timeout` is given up, so a client that stopped reading (an event
        stream, a download) does not hold its connection forever."""
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.limits.body_timeout, self._give_up_on_reader)

    def resume_writing(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        super().resume_writing()

    def _give_up_on_reader(self) -> None:
        self._stalled = None
        self.logger.info("dropped a connection whose client took nothing of the answer for %g s", self.limits.body_timeout)
        self.transport.abort()

    def handle_websocket_upgrade(self) -> None:
        self._stop_deadline()  # the socket is the WebSocket protocol's from now on; its pings watch the client
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._await_headers()  # bytes after an idle keep-alive: a request is beginning
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline is None:
            self._await_headers()  # a pipelined request, right behind the previous one

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._await_body()  # on_message_complete follows at once when there is no body

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self.cycle is not None and not self.cycle.response_complete:
            self._await_body()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_deadline()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what the parser refused; it has logged one warning line already."""
        self.refuse(*self._refusal)

    def refuse(self, status: int, detail: str, code: str, retry_after: int | None = None) -> None:
        """Answers in the app's error shape, then closes: nothing else will be read from this client."""
        self._stop_deadline()
        if self.transport.is_closing():
            return
        body = json.dumps({"detail": detail, "error_code": code}).encode()
        headers = [
            *self.server_state.default_headers,
            *((name.encode(), value.encode()) for name, value in HEADERS.items()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[status] + head + b"\r\n" + body)
        self.transport.close()

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refusal = HEADERS_TOO_LARGE
            raise HeadersTooLarge  # the parser stops and reports it: send_400_response answers

    def _await_headers(self) -> None:
        self._start_deadline(self.limits.header_timeout, "the request headers did not arrive in time")

    def _await_body(self) -> None:
        self._start_deadline(self.limits.body_timeout, "the request body stopped arriving")

    def _start_deadline(self, seconds: float, why: str) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(seconds, self._on_deadline, seconds, why)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self, seconds: float, why: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        waiting_on_us = self.flow.read_paused or (
            cycle is not None and cycle.waiting_for_100_continue and not cycle.response_complete
        )
        if waiting_on_us:
            self._start_deadline(seconds, why)
        elif not self._received_any or (cycle is not None and cycle.response_started and not cycle.response_complete):
            self.transport.close()  # nothing to answer: no request begun, or an answer already under way
        else:
            self.refuse(408, f"{why} (limit {seconds:g} s)", "request_timeout")


class ByListener:
    """Routes each request by the port it came in on: the metrics listener's to the metrics app,
    every other to the API (which alone runs the lifespan: the hub is started once)."""

    def __init__(self, api: Any, metrics: Any, metrics_port: int) -> None:
        self.api = api
        self.metrics = metrics
        self.metrics_port = metrics_port

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        server = scope.get("server") or (None, None)
        target = self.metrics if scope["type"] == "http" and server[1] == self.metrics_port else self.api
        await target(scope, receive, send)
