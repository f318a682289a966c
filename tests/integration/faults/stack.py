"""A throw-away distributed deployment to break on purpose.

`Stack` gives each test a database, a bucket, Kafka topics (a topic prefix) and a worker consumer
group of its own on the real PostgreSQL, Kafka and S3 servers of `scripts/services.sh`, and runs
`chat4all serve` and `chat4all worker` as subprocesses it can stop, `kill -9` and restart. Every
incarnation of a process writes its own stdout/stderr files, so the connector lines of a killed
worker are kept.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.integration.faults.servers import require_services, say
from tests.integration.http.profiles import PASSWORD, discard_distributed, distributed_env
from tests.ports import low_port


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    out: Path
    err: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None


class Stack:
    """One isolated distributed deployment. `async with Stack(...)` creates and migrates it, with no
    process running yet; leaving the block stops every process, then drops the database, bucket
    and topics, unless the block failed: then they are kept, with the logs, for inspection."""

    def __init__(self, workdir: Path, tag: str, **extra_env: str):
        self.workdir = workdir
        self.tag = tag
        self.extra_env = extra_env
        self.env: dict[str, str] = {}
        self.database = ""
        self.processes: dict[str, Process] = {}
        self.retired: list[Process] = []  # killed or stopped incarnations, whose logs still count
        self.incarnations: Counter[str] = Counter()
        self.users: list[tuple[str, str]] = []  # (user_id, username)
        self.tokens: dict[str, str] = {}  # user_id -> bearer token

    def topic(self, name: str) -> str:
        return self.env["CHAT4ALL_KAFKA_TOPIC_PREFIX"] + name

    async def __aenter__(self) -> Stack:
        await asyncio.to_thread(require_services)
        from chat4all.entrypoints.cli import migrate
        from chat4all.entrypoints.settings import load_settings

        started = time.monotonic()
        # A database, a bucket, a topic prefix and a worker group of its own.
        base = await asyncio.to_thread(distributed_env, f"faults{self.tag}")
        self.database = base["CHAT4ALL_DATABASE_URL"].rsplit("/", 1)[1]
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CHAT4ALL_") or key.startswith("CHAT4ALL_TEST_")
        }
        inherited.pop("PYTHONDONTWRITEBYTECODE", None)  # many processes start: let them reuse bytecode
        self.env = {
            **inherited,
            **base,
            "PYTHONUNBUFFERED": "1",
            "CHAT4ALL_DATA_DIR": str(self.workdir / "data"),
            "CHAT4ALL_LOG_LEVEL": "INFO",
            **self.extra_env,
        }
        await migrate(load_settings(self.env))  # schema, bucket, topics: what `chat4all migrate` does
        say(
            f"{self.tag}: database {self.database}, topics {self.topic('*')} ready in {time.monotonic() - started:.1f}s"
        )
        return self

    async def __aexit__(self, kind, error, traceback) -> None:
        await asyncio.to_thread(self.stop_all)
        if error is None:
            await discard_distributed(self.env)
        else:
            say(f"{self.tag}: kept database {self.database}, topics {self.topic('*')} and the logs in {self.workdir}")

    # -- processes ------------------------------------------------------------------------

    def _spawn(self, name: str, args: Sequence[str], env: dict[str, str], port: int | None) -> Process:
        assert name not in self.processes or not self.processes[name].alive(), f"{name} is already running"
        if name in self.processes:
            self.retired.append(self.processes.pop(name))
        self.incarnations[name] += 1
        stem = f"{name}-{self.incarnations[name]}"
        out, err = self.workdir / f"{stem}.out", self.workdir / f"{stem}.err"
        popen = subprocess.Popen(
            [sys.executable, "-m", "chat4all.entrypoints.cli", *args],
            env={**self.env, **env},
            stdout=out.open("w"),
            stderr=err.open("w"),
        )
        process = self.processes[name] = Process(name, popen, out, err, port)
        return process

    def start_api(self, name: str = "api", port: int | None = None, **env: str) -> Process:
        port = port or low_port()  # an API restarted on its port while clients retry it
        return self._spawn(name, ["serve", "--port", str(port)], env, port)

    def start_worker(self, name: str = "worker", **env: str) -> Process:
        return self._spawn(name, ["worker"], env, None)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        process.popen.send_signal(sig)
        process.popen.wait(timeout=30)
        self.retired.append(self.processes.pop(name))

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.alive():
                process.popen.terminate()
        for process in self.processes.values():
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        self.retired += self.processes.values()
        self.processes.clear()

    def all_processes(self) -> list[Process]:
        return [*self.retired, *self.processes.values()]

    def worker_logs(self) -> list[Path]:
        return [process.out for process in self.all_processes() if process.name.startswith("worker")]

    def diagnostics(self, tail: int = 3000) -> str:
        parts = []
        for process in self.all_processes():
            errors = process.err.read_text(errors="replace") if process.err.exists() else ""
            parts.append(f"--- {process.err.name} (exit {process.popen.poll()}) ---\n{errors[-tail:]}")
        return "\n".join(parts)

    def assert_alive(self) -> None:
        for process in self.processes.values():
            assert process.alive(), f"{process.name} exited with {process.popen.returncode}\n{self.diagnostics()}"

    async def wait_api(self, name: str = "api", timeout: float = 60) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                assert process.alive(), f"{name} exited during start-up\n{self.diagnostics()}"
                try:
                    async with session.get(f"{process.url}/health", timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, f"{name} did not answer /health in {timeout}s\n{self.diagnostics()}"
                await asyncio.sleep(0.2)

    async def wait_worker(self, name: str = "worker", timeout: float = 90) -> float:
        """Waits until this incarnation of the worker owns partitions; returns how long it took."""
        process = self.processes[name]
        started = time.monotonic()
        while True:
            assert process.alive(), f"{name} exited during start-up\n{self.diagnostics()}"
            text = process.err.read_text(errors="replace")
            if re.search(r"partitions assigned: [1-9]", text):
                return time.monotonic() - started
            assert time.monotonic() - started < timeout, f"{name} got no partitions in {timeout}s\n{self.diagnostics()}"
            await asyncio.sleep(0.2)

    async def deploy(
        self, *, apis: Sequence[str] = ("api",), workers: Sequence[str] = ("worker",), users: int = 8, **worker_env: str
    ) -> list[tuple[str, str, str]]:
        """Starts the API and worker processes, registers `users` users and opens a private
        conversation for every pair of them; returns once every worker owns partitions."""
        started = time.monotonic()
        for name in apis:
            self.start_api(name)
        for name in workers:
            self.start_worker(name, **worker_env)
        await asyncio.gather(*(self.wait_api(name) for name in apis))
        url = self.processes[apis[0]].url
        await self.add_users(users, url)
        conversations = await self.private_conversations(url)
        for name in workers:  # one after the other: each newcomer makes the group rebalance
            await self.wait_worker(name)
        say(
            f"{self.tag}: {len(apis)} API and {len(workers)} worker processes, {users} users, "
            f"{len(conversations)} conversations up in {time.monotonic() - started:.1f}s"
        )
        return conversations

    def count_in_logs(self, pattern: str, prefix: str = "worker") -> int:
        """Lines of the stderr logs of every incarnation of the `prefix` processes matching `pattern`."""
        found = re.compile(pattern)
        return sum(
            1
            for process in self.all_processes()
            if process.name.startswith(prefix)
            for line in process.err.read_text(errors="replace").splitlines()
            if found.search(line)
        )

    # -- users and conversations ----------------------------------------------------------

    async def add_users(self, count: int, base_url: str) -> None:
        """Registers users through the composition root (there is no sign-up endpoint), then logs
        them in over HTTP."""
        from chat4all.entrypoints.bootstrap import build
        from chat4all.entrypoints.settings import load_settings

        hub = build("api", load_settings(self.env))
        try:
            names = [f"f{self.tag[:8]}{index}_{uuid.uuid4().hex[:6]}" for index in range(count)]
            made = await asyncio.gather(*(hub.register_user.execute(name, PASSWORD) for name in names))
        finally:
            await hub.stop()
        self.users = [(str(user.id), user.username) for user in made]
        async with aiohttp.ClientSession(base_url) as session:
            for user_id, username in self.users:
                async with session.post("/auth/token", json={"username": username, "password": PASSWORD}) as response:
                    assert response.status == 200, await response.text()
                    self.tokens[user_id] = (await response.json())["access_token"]

    async def private_conversations(self, base_url: str) -> list[tuple[str, str, str]]:
        """(conversation_id, member, member) for every pair of users."""
        found = []
        async with aiohttp.ClientSession(base_url) as session:
            for (first, _), (second, _) in itertools.combinations(self.users, 2):
                async with session.post(
                    "/v1/conversations",
                    json={"type": "private", "members": [first, second]},
                    headers=self.auth(first),
                ) as response:
                    assert response.status in (200, 201), await response.text()
                    found.append(((await response.json())["conversation_id"], first, second))
        return found

    def auth(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user_id]}"}
