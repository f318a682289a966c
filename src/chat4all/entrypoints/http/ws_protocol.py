"""The WebSocket protocol `chat4all serve` runs: uvicorn's sans-I/O one on `websockets`, with a
way to give up on a client that has stopped reading.

uvicorn holds every frame the app sends until the client has taken enough of what came before
(flow control): a client that stops reading would hold its connection, and the handler sending
to it, forever, and its close frame could never go out. The app marks the frames it sends when
it gives up on such a client (`LAST_WORDS`: the `resync` frame that says why, then the close):
those are written at once, past the flow control (a few hundred bytes, once per connection), so
a client that reads again gets everything before them, then them; one that never does is dropped
once the closing handshake has had `close_timeout` seconds.

Keep-alive pings go out from one timer per process (`KeepAliveWheel`) rather than two per connection.

The kernel's send buffer of a WebSocket is capped (`SEND_BUFFER`): left to grow, it reaches
megabytes for a client that stops reading, which is memory the bounded queues were meant to
save; a frame then waits in the log, not in the kernel.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
import weakref
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# What a WebSocket client may send in one frame (auth, resume, typing, ping are all tiny); past it: 1009.
MAX_CLIENT_FRAME = 64 * 1024
LAST_WORDS = "chat4all.last_words"  # set (True) in an ASGI send message: written past the flow control
SEND_BUFFER = 128 * 1024  # bytes asked of the kernel (Linux doubles it): 2.5 MB/s at a 100 ms round trip
TICK = 1.0  # seconds between the keep-alive wheel's turns (see `KeepAliveWheel`)


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: Any) -> None:
        raw = transport.get_extra_info("socket")
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        super().connection_made(transport)

    def start_keepalive(self) -> None:
        if self.ping_interval:
            wheel_of(self.loop, self.ping_interval).add(self)

    def stop_keepalive(self) -> None:
        if self.ping_interval:
            wheel_of(self.loop, self.ping_interval).discard(self)
        self.pending_ping_payload = None

    async def send(self, message: Any) -> None:
        if message.get(LAST_WORDS) and self.handshake_complete and not self.close_sent and not self.disconnected:
            self._write_past_flow_control(message)
            return
        await super().send(message)

    def _write_past_flow_control(self, message: Any) -> None:
        if message["type"] == "websocket.send":
            self.conn.send_text(message["text"].encode())
            self.transport.write(b"".join(self.conn.data_to_send()))
            return
        code, reason = message.get("code", 1000), message.get("reason", "") or ""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        # Not a graceful close when it expires: that would wait for the client to take the buffer.
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)


class KeepAliveWheel:
    """The pings of every WebSocket of one event loop, on one timer.

    uvicorn gives each connection two timers of its own (the next ping, then the pong's deadline):
    at 10,000 idle connections and a ping every 15 s that is 1,300 timer callbacks and event-loop
    turns a second, each for one socket. The wheel has `interval` one-second slots; a connection
    joins the slot just passed, so it is pinged a whole interval after it opened and then every
    interval, its ping sent with the others of its slot in one turn of the loop (and their pongs
    read together). A connection whose previous ping got no pong by its next turn (a whole
    interval: uvicorn's ping timeout, as configured) is closed with 1011, as uvicorn would.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop = loop
        self._slots: list[set[Any]] = [set() for _ in range(max(1, math.ceil(interval / TICK)))]
        self._tick = interval / len(self._slots)
        self._hand = 0  # the slot the next tick serves
        self._slot_of: dict[Any, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, connection: Any) -> None:
        slot = (self._hand - 1) % len(self._slots)
        self._slots[slot].add(connection)
        self._slot_of[connection] = slot
        if self._timer is None:
            self._timer = self._loop.call_later(self._tick, self.tick)

    def discard(self, connection: Any) -> None:
        slot = self._slot_of.pop(connection, None)
        if slot is not None:
            self._slots[slot].discard(connection)

    def __len__(self) -> int:
        return len(self._slot_of)

    def tick(self) -> None:
        """Pings the connections of the slot whose turn it is (closing those that never answered the last)."""
        self._timer = None
        for connection in list(self._slots[self._hand]):
            _ping(connection, self._loop.time())
        self._hand = (self._hand + 1) % len(self._slots)
        if self._slot_of:
            self._timer = self._loop.call_later(self._tick, self.tick)


def _ping(connection: Any, now: float) -> None:
    if connection.close_sent or connection.transport.is_closing():
        return
    if connection.pending_ping_payload is not None:
        connection.keepalive_timeout()  # no pong to the last ping in a whole interval: 1011, closed
        return
    connection.pending_ping_payload = secrets.token_bytes(4)  # `handle_pong` ignores pongs to other pings
    connection.ping_sent_at = now
    connection.conn.send_ping(connection.pending_ping_payload)
    connection.transport.write(b"".join(connection.conn.data_to_send()))


_wheels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, KeepAliveWheel]] = weakref.WeakKeyDictionary()


def wheel_of(loop: asyncio.AbstractEventLoop, interval: float) -> KeepAliveWheel:
    by_interval = _wheels.setdefault(loop, {})
    if interval not in by_interval:
        by_interval[interval] = KeepAliveWheel(loop, interval)
    return by_interval[interval]
