"""The WebSocket protocol `chat4all serve` runs: uvicorn's sans-I/O one on `websockets`, with a
way to give up on a client that has stopped reading.

uvicorn holds every frame the app sends until the client has taken enough of what came before
(flow control): a client that stops reading would hold its connection, and the handler sending
to it, forever, and its close frame could never go out. The app marks the frames it sends when
it gives up on such a client (`LAST_WORDS`: the `resync` frame that says why, then the close):
those are written at once, past the flow control (a few hundred bytes, once per connection), so
a client that reads again gets everything before them, then them; one that never does is dropped
once the closing handshake has had `close_timeout` seconds.

Keep-alive pings go out from one timer per process (`ws_keepalive.KeepAliveWheel`) rather than
two per connection, and the pings and pongs of idle connections skip the frame parser.

The kernel's send buffer of a WebSocket is capped (`SEND_BUFFER`): left to grow, it reaches
megabytes for a client that stops reading, which is memory the bounded queues were meant to
save; a frame then waits in the log, not in the kernel.
"""

from __future__ import annotations

import socket
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from chat4all.entrypoints.http.ws_keepalive import PING, PONG, between_frames, control_frame, pong_frame, wheel_of

# What a WebSocket client may send in one frame (auth, resume, typing, ping are all tiny); past it: 1009.
MAX_CLIENT_FRAME = 64 * 1024
LAST_WORDS = "chat4all.last_words"  # set (True) in an ASGI send message: written past the flow control
SEND_BUFFER = 128 * 1024  # bytes asked of the kernel (Linux doubles it): 2.5 MB/s at a 100 ms round trip


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

    def data_received(self, data: bytes) -> None:
        """A chunk that is exactly one ping or pong, between frames of an open connection (what an
        idle connection receives), is answered here; anything else goes through the parser."""
        control = control_frame(data)
        if control is None or self.conn.state is not State.OPEN or not between_frames(self.conn):
            super().data_received(data)
            return
        opcode, payload = control
        if opcode == PONG:
            self.handle_pong(Frame(Opcode.PONG, payload))
        elif opcode == PING:
            self.transport.write(pong_frame(payload))

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
