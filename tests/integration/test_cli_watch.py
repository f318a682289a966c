"""`chat4all watch` end to end: `chat4all serve --demo` in a subprocess, which the tests stop and
start again on the same port and data directory, and the watch as a user runs it, in a subprocess
of its own, read line by line as it prints."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.integration.cli_users import Hub, User, wait_ready
from tests.integration.http.profiles import FAST_ARGON2
from tests.ports import low_port

PATIENCE = 30.0  # seconds for a line to come; a reconnection after a restart takes a few


class Server:
    """`chat4all serve --demo` on one port and data directory, across restarts."""

    def __init__(self, workdir: Path):
        self.port = low_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "serve.log"
        self.env = {**os.environ, **FAST_ARGON2, "PYTHONUNBUFFERED": "1", "CHAT4ALL_DATA_DIR": str(workdir / "data")}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "chat4all.entrypoints.cli", "serve", "--demo", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=self.env, stdout=self.log.open("a"), stderr=subprocess.STDOUT)
        wait_ready(self.url, self.log)

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        self.process.send_signal(how)
        self.process.wait(timeout=30)


class Watch:
    """`chat4all watch ARGS` as `user`, its stdout read by a thread into a queue."""

    def __init__(self, user: User, *args: str):
        self.process = subprocess.Popen(user.command("watch", *args), env=user.env, cwd=user.home, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self.errors), daemon=True).start()
        self.stderr: list[str] = []
        try:
            self.until_error(lambda line: line.startswith("watching "))
        except BaseException:
            self.kill()
            raise

    @staticmethod
    def _pump(stream, into: queue.Queue) -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    def line(self) -> str:
        try:
            return self.lines.get(timeout=PATIENCE)
        except queue.Empty:
            raise AssertionError(f"no line from the watch in {PATIENCE} s; stderr: {self.stderr}") from None

    def until(self, text: str) -> list[str]:
        """Lines printed up to the one containing `text`, that one included."""
        lines = [self.line()]
        while text not in lines[-1]:
            lines.append(self.line())
        return lines

    def until_error(self, done) -> str:
        while True:
            line = self.errors.get(timeout=PATIENCE)
            self.stderr.append(line)
            if done(line):
                return line

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=30)
        time.sleep(0.2)
        while not self.errors.empty():
            self.stderr.append(self.errors.get())
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("cli-watch"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def user(name: str, server: Server, tmp_path: Path) -> User:
    person = User(name, tmp_path / name, Hub(server.url, server.log))
    person.home.mkdir()
    person.login()
    return person


@pytest.fixture
def alice(server, tmp_path) -> User:
    return user("alice", server, tmp_path)


@pytest.fixture
def bob(server, tmp_path) -> User:
    return user("bob", server, tmp_path)


@pytest.fixture
def watches():
    started: list[Watch] = []
    yield lambda user, *args: started.append(Watch(user, *args)) or started[-1]
    for watch in started:
        watch.kill()


def test_bob_sees_what_alice_sends_as_it_comes_and_ctrl_c_ends_the_watch(alice, bob, watches):
    watch = watches(bob)
    sent = alice.json("send", "bob", "Olá, Bob!")[0]
    shown = watch.until("Olá, Bob!")
    assert shown[-1].endswith("  [with alice]  alice: Olá, Bob!"), shown
    alice.run("send", sent["conversation_id"], "second")
    assert watch.line().endswith("alice: second")
    assert watch.interrupt() == 0
    assert not any("Traceback" in line or "error" in line for line in watch.stderr), watch.stderr


def test_typing_notices_which_only_streams_carry_are_shown(server, alice, bob, watches):
    watch = watches(bob)
    conversation = alice.json("send", "bob", "about to type")[0]["conversation_id"]
    watch.until("alice: about to type")
    socket_url = server.url.replace("http://", "ws://") + "/v1/events/ws"
    with connect(socket_url, additional_headers={"Authorization": f"Bearer {alice.token()}"}) as socket:
        assert json.loads(socket.recv(timeout=PATIENCE))["type"] == "ready"
        socket.send(json.dumps({"type": "typing", "conversation_id": conversation}))
        assert watch.line().endswith("  [with alice]  alice is typing…")


def test_a_reader_that_stops_reading_ends_the_watch_quietly(alice, bob):
    pipeline = f"{shlex.join(bob.command('watch', '--json'))} | head -n 1; exit ${{PIPESTATUS[0]}}"
    shell = subprocess.Popen(["bash", "-c", pipeline], env=bob.env, cwd=bob.home, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert shell.stderr.readline().startswith("watching ")
        alice.run("send", "bob", "one")
        for text in ("two", "three"):  # written to a pipe nobody reads any more (head may still be exiting at two)
            alice.run("send", "bob", text)
        out, err = shell.communicate(timeout=PATIENCE)
    finally:
        shell.kill()
    assert json.loads(out)["data"]["payload"]["text"] == "one"
    assert shell.returncode == 0 and "Traceback" not in err and "Error" not in err, err


def test_json_lines_of_one_conversation_only(server, alice, bob, tmp_path, watches):
    carol = user("carol", server, tmp_path)
    private = alice.json("send", "bob", "hello")[0]["conversation_id"]
    watch = watches(bob, "alice", "--json")
    carol.run("send", "bob", "from carol, elsewhere")
    alice.run("send", "bob", "from alice")
    events = [json.loads(line) for line in watch.until("from alice")]
    assert {event["data"]["conversation_id"] for event in events} == {private}
    assert events[-1]["type"] == "message.created" and events[-1]["data"]["payload"]["text"] == "from alice"
    assert all(isinstance(event["seq"], int) for event in events)


def test_after_a_server_restart_or_crash_the_watch_resumes_with_nothing_missed_or_twice(server, alice, bob, watches):
    watch = watches(bob, "--json")
    texts = ["before", "after a restart", "after a crash"]
    alice.run("send", "bob", texts[0])
    seen = watch.until(texts[0])
    for how, text in ((signal.SIGTERM, texts[1]), (signal.SIGKILL, texts[2])):
        server.stop(how)
        server.start()
        alice.run("send", "bob", text)  # the watch may still be waiting to reconnect: it catches up then
        seen += watch.until(text)
    events = [json.loads(line) for line in seen]
    created = [event["data"]["payload"]["text"] for event in events if event["type"] == "message.created"]
    assert created == texts
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs)) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, none twice
    assert "connection lost" in " ".join(watch.stderr + [watch.until_error(lambda line: "reconnected" in line)])


def test_a_wrong_url_or_a_revoked_session_ends_the_watch_with_a_message(server, alice, bob, watches):
    credentials = bob.home / "config" / "chat4all" / "credentials.json"
    saved = json.loads(credentials.read_text())
    credentials.write_text(json.dumps({**saved, "url": f"http://127.0.0.1:{low_port()}"}))
    unreachable = bob.run("watch", check=False)
    assert unreachable.returncode == 4 and unreachable.stderr.startswith("error: cannot reach http://127.0.0.1:")
    credentials.write_text(json.dumps(saved))

    watch = watches(alice)
    httpx.post(server.url + "/auth/logout", headers={"Authorization": f"Bearer {alice.token()}"})
    assert watch.process.wait(timeout=PATIENCE) == 3
    message = watch.until_error(lambda line: line.startswith("error: "))
    assert "the session has expired or was revoked" in message and "chat4all login" in message
