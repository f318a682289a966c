"""`kill -9` of the embedded `chat4all serve` (SQLite, in-process bus) in the middle of a burst.

The in-process bus holds its events in memory, so the kill loses the work in flight: messages
accepted, their events taken from the outbox, and not finished. Restarted with the defaults, the
process resumes them at start-up: every message in the database is finished within 10 s of the
restart, each connector line written exactly once over both runs' logs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

from tests.integration.faults.checking import connector_lines
from tests.integration.faults.load import Load, plan
from tests.integration.faults.recovery import RESUME_WITHIN
from tests.integration.faults.servers import say
from tests.integration.http.profiles import FAST_ARGON2, PASSWORD
from tests.ports import low_port

MESSAGES = 3000
CLIENTS = 50
USERS = 8
KILL_AFTER = 0.5  # share of the burst answered when the process is killed


class EmbeddedServer:
    """`chat4all serve` on a data directory of its own, as subprocesses to kill and restart."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = low_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("CHAT4ALL_")}
        self.env = {**inherited, **FAST_ARGON2, "PYTHONUNBUFFERED": "1", "CHAT4ALL_DATA_DIR": str(workdir / "data")}
        self.database = workdir / "data" / "chat4all.db"
        self.runs: list[tuple[subprocess.Popen, Path]] = []
        self.tokens: dict[str, str] = {}

    def start(self) -> None:
        stem = self.workdir / f"serve-{len(self.runs) + 1}"
        out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
        process = subprocess.Popen(
            [sys.executable, "-m", "chat4all.entrypoints.cli", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=out.open("w"),
            stderr=err.open("w"),
        )
        self.runs.append((process, out))

    def kill(self) -> None:
        process, _ = self.runs[-1]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process, _ in self.runs:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"{self.url}/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"chat4all serve did not answer in {timeout}s: {self.runs[-1][1].read_text()[-2000:]}")

    def auth(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user_id]}"}

    async def conversations(self, users: list[str]) -> list[tuple[str, str, str]]:
        """Logs the users in and opens a private conversation for every pair of them."""
        found = []
        async with aiohttp.ClientSession(self.url) as session:
            for user_id, username in users:
                async with session.post("/auth/token", json={"username": username, "password": PASSWORD}) as response:
                    assert response.status == 200, await response.text()
                    self.tokens[user_id] = (await response.json())["access_token"]
            for (first, _), (second, _) in itertools.combinations(users, 2):
                body = {"type": "private", "members": [first, second]}
                async with session.post("/v1/conversations", json=body, headers=self.auth(first)) as response:
                    assert response.status in (200, 201), await response.text()
                    found.append(((await response.json())["conversation_id"], first, second))
        return found

    def read(self, query: str) -> list[tuple]:
        connection = sqlite3.connect(self.database, timeout=30)
        try:
            return connection.execute(query).fetchall()
        finally:
            connection.close()

    def unfinished(self) -> tuple[int, int]:
        """(unfinished messages, of those the ones whose event has left the outbox)."""
        waiting = {str(uuid.UUID(row[0])) for row in self.read("SELECT id FROM messages WHERE status IN ('accepted', 'routed')")}
        in_outbox = {json.loads(row[0])["message_id"] for row in self.read("SELECT payload FROM outbox")}
        return len(waiting), len(waiting - in_outbox)

    def owed_lines(self) -> tuple[Counter[str], set[tuple[str, str, str]]]:
        """(messages per status, the connector lines the delivered channels owe)."""
        members: dict[str, set[str]] = {}
        for conversation_id, user_id in self.read("SELECT conversation_id, user_id FROM conversation_members"):
            members.setdefault(conversation_id, set()).add(user_id)
        statuses: Counter[str] = Counter()
        owed = set()
        rows = self.read("SELECT id, conversation_id, sender_id, channels, status FROM messages")
        for message_id, conversation_id, sender, channels, status in rows:
            statuses[status] += 1
            for channel, recipient in itertools.product(json.loads(channels), members[conversation_id] - {sender}):
                owed.add((str(uuid.UUID(message_id)), str(uuid.UUID(recipient)), channel))
        return statuses, owed


async def add_users(server: EmbeddedServer) -> list[tuple[str, str]]:
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.cli import migrate
    from chat4all.entrypoints.settings import load_settings

    settings = load_settings({**FAST_ARGON2, "CHAT4ALL_DATA_DIR": server.env["CHAT4ALL_DATA_DIR"]})
    await migrate(settings)
    hub = build("embedded", settings)
    try:
        names = [f"crash{index}" for index in range(USERS)]
        made = [await hub.register_user.execute(name, PASSWORD) for name in names]
    finally:
        await hub.stop()
    return [(str(user.id), user.username) for user in made]


async def finished_within(server: EmbeddedServer, since: float, timeout: float) -> float:
    """Seconds from `since` until no message is unfinished; `timeout` if some still are then."""
    while time.time() - since < timeout:
        if (await asyncio.to_thread(server.unfinished))[0] == 0:
            return time.time() - since
        await asyncio.sleep(0.2)
    return timeout


async def test_work_in_flight_at_a_crash_resumes_at_the_restart(tmp_path):
    server = EmbeddedServer(tmp_path)
    users = await add_users(server)
    server.start()
    try:
        await server.wait_ready()
        conversations = await server.conversations(users)
        planned = plan(conversations, MESSAGES)
        load = Load(server, planned, CLIENTS, lambda _: server.url)
        burst = asyncio.create_task(load.run())
        await load.until(int(MESSAGES * KILL_AFTER))
        server.kill()
        await burst  # the rest of the burst finds nobody listening
        unfinished, in_memory = await asyncio.to_thread(server.unfinished)
        say(f"kill -9 after {load.figures()['accepted']} accepted: {unfinished} unfinished, {in_memory} of them in memory only")

        restarted = time.time()
        server.start()
        resumed = await finished_within(server, restarted, timeout=60.0)
        await asyncio.sleep(1.0)  # a line written just after the last status change is counted too
        statuses, owed = await asyncio.to_thread(server.owed_lines)
        lines = connector_lines(out for _, out in server.runs)
    finally:
        server.stop()

    summary = (
        f"unfinished at the kill {unfinished} ({in_memory} in memory only), all finished {resumed:.1f}s after "
        f"the restart; statuses {dict(statuses)}, lines {sum(lines.values())} of {len(owed)} owed"
    )
    say(summary)
    assert in_memory > 0, f"the kill left no work in memory, so nothing was resumed: {summary}"
    accepted = set(load.ids("accepted"))
    stored = {message_id for message_id, _, _ in owed}
    assert accepted <= stored, f"accepted but lost: {sorted(accepted - stored)[:5]}"
    assert statuses["delivered"] == sum(statuses.values()), summary
    assert resumed <= RESUME_WITHIN, f"the work in flight did not resume at the restart: {summary}"
    assert set(lines) == owed, f"missing {sorted(owed - set(lines))[:3]}, stray {sorted(set(lines) - owed)[:3]}"
    assert max(lines.values()) == 1, f"doubled: {[key for key, count in lines.items() if count > 1][:5]}"
