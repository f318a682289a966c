"""WebSocket keep-alive on one timer per process: every open connection is pinged once per
interval, one whose last ping got no pong by its next turn is closed, a closed one is never
pinged again, and however many connections there are, one timer is pending. An idle client's
pings and pongs are recognised without the frame parser, and only between frames."""

from __future__ import annotations

from websockets.protocol import State
from websockets.server import ServerProtocol

from chat4all.entrypoints.http.ws_keepalive import PING, PONG, KeepAliveWheel, between_frames, control_frame, ping_frame

INTERVAL = 3.0  # three one-second slots


class FakeLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, object]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append((self.now + delay, timer))
        return timer

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = sorted((at, timer) for at, timer in self.timers if at <= end and not timer.cancelled)
            if not due:
                break
            at, timer = due[0]
            self.timers.remove((at, timer))
            self.now = at
            timer.callback()
        self.now = end

    @property
    def pending(self) -> int:
        return sum(1 for _, timer in self.timers if not timer.cancelled)


class FakeTimer:
    def __init__(self, at: float, callback) -> None:
        self.at, self.callback, self.cancelled = at, callback, False

    def __lt__(self, other: FakeTimer) -> bool:
        return id(self) < id(other)

    def cancel(self) -> None:
        self.cancelled = True


class FakeConnection:
    """What the wheel uses of uvicorn's protocol; `answers`: whether the client sends its pongs."""

    def __init__(self, answers: bool = True) -> None:
        self.answers = answers
        self.close_sent = False
        self.pending_ping_payload: bytes | None = None
        self.ping_sent_at = 0.0
        self.pings = 0
        self.timed_out = False
        self.transport = self

    def write(self, data: bytes) -> None:
        assert data == ping_frame(self.pending_ping_payload)
        self.pings += 1
        if self.answers:
            self.pending_ping_payload = None  # the pong came back (handle_pong)

    def is_closing(self) -> bool:
        return self.close_sent

    def keepalive_timeout(self) -> None:
        self.timed_out = self.close_sent = True


def test_each_connection_is_pinged_once_per_interval_from_a_single_timer():
    loop = FakeLoop()
    wheel = KeepAliveWheel(loop, INTERVAL)
    connections = []
    for _ in range(3):  # opened a second apart: they land in different slots
        for _ in range(100):
            connections.append(FakeConnection())
            wheel.add(connections[-1])
        loop.run_for(1.0)
        assert loop.pending == 1
    loop.run_for(4 * INTERVAL)
    assert {connection.pings for connection in connections} == {4, 5}
    assert loop.pending == 1


def test_a_connection_that_never_answers_is_closed_at_its_next_turn_and_pinged_no_more():
    loop = FakeLoop()
    wheel = KeepAliveWheel(loop, INTERVAL)
    silent, alive = FakeConnection(answers=False), FakeConnection()
    wheel.add(silent)
    wheel.add(alive)
    loop.run_for(INTERVAL)
    assert (silent.pings, silent.timed_out) == (1, False)
    loop.run_for(INTERVAL)
    assert (silent.pings, silent.timed_out) == (1, True)
    loop.run_for(3 * INTERVAL)
    assert silent.pings == 1 and alive.pings == 5 and not alive.timed_out


def test_a_closed_connection_leaves_the_wheel_and_an_empty_wheel_holds_no_timer():
    loop = FakeLoop()
    wheel = KeepAliveWheel(loop, INTERVAL)
    connection = FakeConnection()
    wheel.add(connection)
    loop.run_for(INTERVAL)
    wheel.discard(connection)
    loop.run_for(3 * INTERVAL)
    assert connection.pings == 1 and len(wheel) == 0 and loop.pending == 0
    wheel.add(connection)
    assert loop.pending == 1


def client_frame(first: int, payload: bytes, mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    return bytes((first, 0x80 | len(payload))) + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


def test_exactly_one_masked_ping_or_pong_is_recognised_and_nothing_else():
    assert control_frame(client_frame(0x8A, b"abcd")) == (PONG, b"abcd")
    assert control_frame(client_frame(0x89, b"")) == (PING, b"")
    assert control_frame(client_frame(0x81, b"abcd")) is None  # a text frame
    assert control_frame(client_frame(0x8A, b"abcd") + client_frame(0x8A, b"efgh")) is None  # two frames
    assert control_frame(client_frame(0x8A, b"abcd")[:-1]) is None  # a part of one
    assert control_frame(bytes((0x8A, 0x04)) + b"abcd") is None  # unmasked: not from a client


UPGRADE = (
    b"GET /v1/events/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def test_a_frame_is_only_taken_past_the_parser_when_it_waits_for_the_start_of_one():
    server = ServerProtocol()
    server.receive_data(UPGRADE)
    [request] = server.events_received()
    server.send_response(server.accept(request))
    assert server.state is State.OPEN and between_frames(server)
    text = client_frame(0x81, b"hello")
    server.receive_data(text[:3])  # a frame's header has come, not its payload
    assert not between_frames(server)
    server.receive_data(text[3:])
    assert between_frames(server)
    assert [frame.data for frame in server.events_received()] == [b"hello"]
