"""WebSocket keep-alive on one timer per process: every open connection is pinged once per
interval, one whose last ping got no pong by its next turn is closed, a closed one is never
pinged again, and however many connections there are, one timer is pending."""

from __future__ import annotations

from chat4all.entrypoints.http.ws_protocol import KeepAliveWheel

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
        self.conn = self
        self.transport = self
        self._out: list[bytes] = []

    def send_ping(self, payload: bytes) -> None:
        self.pings += 1
        self._out.append(payload)

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def write(self, data: bytes) -> None:
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
