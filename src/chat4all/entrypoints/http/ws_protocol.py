"""The WebSocket protocol `chat4all serve` runs: uvicorn's sans-I/O one on `websockets`, with a
way to give up on a client that has stopped reading.

uvicorn holds every frame the app sends until the client has taken enough of what came before
(flow control): a client that stops reading would hold its connection, and the handler sending
to it, forever, and its close frame could never go out. The app marks the frames it sends when
it gives up on such a client (`LAST_WORDS`: the `resync` frame that says why, then the close):
those are written at once, past the flow control (a few hundred bytes, once per connection), so
a client that reads again gets everything before them, then them; one that never does is dropped
once the closing handshake has had `close_timeout` seconds.

The kernel's send buffer of a WebSocket is capped (`SEND_BUFFER`): left to grow, it reaches
megabytes for a client that stops reading, which is memory the bounded queues were meant to
save; a frame then waits in the log, not in the kernel.
"""

from __future__ import annotations

import socket
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

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
