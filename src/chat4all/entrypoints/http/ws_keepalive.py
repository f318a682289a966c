"""WebSocket keep-alive for many idle connections: one timer per process, and pings and pongs
read and written without the general frame parser.

At 10,000 idle connections and a ping every 15 s, what a connection costs is its keep-alive:
with uvicorn's own, two timers per connection (the next ping, then the pong's deadline) and
every pong through the `websockets` parser, which is most of the process's idle CPU. Here:
- `KeepAliveWheel`: one timer per event loop, turning once a second over `interval` slots;
- a chunk of received bytes that is exactly one masked ping or pong frame (what an idle client
  sends), arriving between frames, is recognised by its two header bytes (`control_frame`), and
  answered directly; any other chunk goes through the parser as before.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import weakref
from typing import Any

from websockets.streams import StreamReader

TICK = 1.0  # seconds between the wheel's turns
PING, PONG = 0x9, 0xA
_FIN = 0x80
_MASKED = 0x80
_MAX_CONTROL_PAYLOAD = 125  # RFC 6455: a control frame's payload fits in the first length byte
_AT_EOF = StreamReader.at_eof.__code__


def control_frame(data: bytes) -> tuple[int, bytes] | None:
    """(opcode, unmasked payload) when `data` is exactly one masked, final ping or pong frame."""
    if not 6 <= len(data) <= 6 + _MAX_CONTROL_PAYLOAD or data[0] not in (_FIN | PING, _FIN | PONG) or data[1] != _MASKED | (len(data) - 6):
        return None
    mask, masked = data[2:6], data[6:]
    return data[0] & 0x0F, bytes(byte ^ mask[index % 4] for index, byte in enumerate(masked))


def ping_frame(payload: bytes) -> bytes:
    return bytes((_FIN | PING, len(payload))) + payload  # a server's frames are not masked


def pong_frame(payload: bytes) -> bytes:
    return bytes((_FIN | PONG, len(payload))) + payload


def between_frames(protocol: Any) -> bool:
    """Whether a `websockets` protocol's parser waits for the start of a frame (not inside one)
    with nothing buffered: only then may a whole frame be taken past it."""
    waiting = protocol.parser
    while (inner := getattr(waiting, "gi_yieldfrom", None)) is not None:  # down to the generator that waits
        waiting = inner
    return getattr(waiting, "gi_code", None) is _AT_EOF and not protocol.reader.buffer


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
    connection.transport.write(ping_frame(connection.pending_ping_payload))


_wheels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, KeepAliveWheel]] = weakref.WeakKeyDictionary()


def wheel_of(loop: asyncio.AbstractEventLoop, interval: float) -> KeepAliveWheel:
    by_interval = _wheels.setdefault(loop, {})
    if interval not in by_interval:
        by_interval[interval] = KeepAliveWheel(loop, interval)
    return by_interval[interval]
