"""A throw-away distributed deployment to break on purpose, a load generator, and a checker.

`Stack` gives each test a database, a bucket, Kafka topics (a topic prefix) and a worker consumer
group of its own on the real PostgreSQL, Kafka and S3 servers of `scripts/services.sh`, and runs
`chat4all serve` and `chat4all worker` as subprocesses it can stop, `kill -9` and restart. Every
incarnation of a process writes its own stdout/stderr files, so the connector lines of a killed
worker are kept.

`Load` sends a planned burst from N concurrent clients and records, per message id, whether the
API answered 200, answered something else, or did not answer at all.

`check` reads every message's status, per-channel deliveries and history straight from
PostgreSQL, counts the connector lines per (message, recipient, channel) over every worker log,
and returns the figures the tests print and assert on.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg
import pytest

from tests.integration.http.profiles import PASSWORD, discard_distributed, distributed_env

KAFKA = os.environ.get("CHAT4ALL_TEST_KAFKA", "127.0.0.1:19092")
DATABASE_URL = os.environ.get(
    "CHAT4ALL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:15432/chat4all_test"
)
S3_ENDPOINT = os.environ.get("CHAT4ALL_TEST_S3_ENDPOINT", "http://127.0.0.1:17070")
REPO = Path(__file__).resolve().parents[3]
SERVICES_SCRIPT = REPO / "scripts" / "services.sh"

CONNECTOR_LINE = re.compile(r"^INFO: Mensagem (\S+) enviada para o usuário (\S+) no (\w+)$")
DISPLAY_TO_CHANNEL = {"WhatsApp": "whatsapp", "Instagram": "instagram"}
UNFINISHED = ("accepted", "routed")


def say(text: str) -> None:
    print(f"[faults] {text}", flush=True)


# ---------------------------------------------------------------------------------------------
# the servers


def admin_dsn(database: str | None = None) -> str:
    url = DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    return url if database is None else url.rsplit("/", 1)[0] + f"/{database}"


def require_services() -> None:
    """Fails (never skips) the test when a server of `scripts/services.sh` does not answer."""
    import boto3
    from botocore.config import Config

    from chat4all.adapters.kafka import check_broker

    problems = []
    try:
        with psycopg.connect(admin_dsn(), connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        problems.append(f"PostgreSQL ({admin_dsn()}): {error}")
    try:
        asyncio.run(check_broker(KAFKA, timeout=5.0))  # called in a thread of its own
    except Exception as error:
        problems.append(f"Kafka ({KAFKA}): {type(error).__name__}: {error}")
    try:
        boto3.client(
            "s3",
            endpoint_url=S3_ENDPOINT,
            aws_access_key_id=os.environ.get("CHAT4ALL_TEST_S3_ACCESS_KEY", "chat4all"),
            aws_secret_access_key=os.environ.get("CHAT4ALL_TEST_S3_SECRET_KEY", "chat4all-secret"),
            region_name="us-east-1",
            config=Config(connect_timeout=5, retries={"max_attempts": 1}),
        ).list_buckets()
    except Exception as error:
        problems.append(f"S3 ({S3_ENDPOINT}): {type(error).__name__}: {error}")
    if problems:
        pytest.fail("servers unreachable, run `bash scripts/services.sh up`:\n" + "\n".join(problems), pytrace=False)


def services(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> None:
    """Runs scripts/services.sh (e.g. `down kafka`, `up kafka`)."""
    done = subprocess.run(
        ["bash", str(SERVICES_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, f"services.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


# Ports handed out by quiet_port in this process: a broker's two ports must differ.
_HANDED_OUT: set[int] = set()
# quiet_port's range: above the default ports of scripts/services.sh (15432, 17070, 19092, 19093),
# below the kernel's ephemeral range (32768-60999 on Linux unless configured otherwise).
QUIET_PORTS_FROM = 20000
EPHEMERAL_FROM_DEFAULT = 32768


def ephemeral_ports_from() -> int:
    """The first port of the kernel's ephemeral range (source ports of outgoing connections)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_FROM_DEFAULT


def quiet_port() -> int:
    """A free port below the kernel's ephemeral range, for a server a test stops and starts again
    on the same port. While a server is down, a client retrying its connection to a port of the
    ephemeral range can be handed that very port as its source port, connect to itself (TCP
    simultaneous open) and hold the port, so the server cannot listen there again: seen with
    aiokafka clients and a restarted broker."""
    high = min(ephemeral_ports_from(), EPHEMERAL_FROM_DEFAULT)
    low = QUIET_PORTS_FROM if high - QUIET_PORTS_FROM >= 1000 else 1024
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise AssertionError(f"no free port in {low}-{high - 1}")


class PrivateBroker:
    """A Kafka broker of the test's own, run by scripts/services.sh with a state directory and
    ports of its own: stopping it is an outage for this test alone, never for other runs sharing
    the servers of `scripts/services.sh up`."""

    def __init__(self, state_dir: Path):
        port, controller = quiet_port(), quiet_port()
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = {
            "CHAT4ALL_STATE_DIR": str(state_dir),
            "CHAT4ALL_KAFKA_PORT": str(port),
            "CHAT4ALL_KAFKA_CONTROLLER_PORT": str(controller),
        }

    async def start(self) -> float:
        started = time.monotonic()
        await asyncio.to_thread(services, "up", "kafka", env=self.env)
        return time.monotonic() - started

    async def stop(self) -> float:
        started = time.monotonic()
        await asyncio.to_thread(services, "down", "kafka", env=self.env)
        return time.monotonic() - started

    async def __aenter__(self) -> PrivateBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class PublishProbe:
    """Publishes without pause from a few concurrent loops through `KafkaEventPublisher`, the class
    the outbox relay and the workers publish with, so that batches are in flight whenever the
    broker goes away; records when publishing works again after it came back."""

    def __init__(self, bootstrap: str, topic: str, loops: int = 10):
        from chat4all.adapters.kafka import KafkaEventPublisher

        self.publisher = KafkaEventPublisher(bootstrap, client_id="faults-probe")
        self.topic = topic
        self.loops = loops
        self.sent: list[float] = []  # monotonic times of acknowledged sends
        self.errors: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> PublishProbe:
        await self.publisher.start()
        self._tasks = [asyncio.create_task(self._loop(index)) for index in range(self.loops)]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.publisher.stop()

    async def _loop(self, index: int) -> None:
        while True:
            try:
                await self.publisher.publish(self.topic, f"probe-{index}", {"probe": index})
                self.sent.append(time.monotonic())
                await asyncio.sleep(0.01)
            except Exception as error:
                self.errors[type(error).__name__] += 1
                await asyncio.sleep(0.1)

    async def recovered(self, since: float, timeout: float) -> float | None:
        """Seconds from `since` to the first acknowledged send after it, or None within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            first = bisect.bisect_left(self.sent, since)
            if first < len(self.sent):
                return self.sent[first] - since
            await asyncio.sleep(0.1)
        return None


# ---------------------------------------------------------------------------------------------
# processes


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
        say(f"{self.tag}: database {self.database}, topics {self.topic('*')} ready in {time.monotonic() - started:.1f}s")
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
        port = port or quiet_port()  # an API restarted on its port while clients retry it
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


# ---------------------------------------------------------------------------------------------
# load


@dataclass(frozen=True)
class Planned:
    message_id: str
    conversation_id: str
    sender: str
    channels: tuple[str, ...]  # as requested: "whatsapp", "instagram" or "all"
    file_id: str | None = None  # a file message when set, else a text one

    def body(self) -> dict:
        payload = (
            {"type": "file", "file_id": self.file_id}
            if self.file_id
            else {"type": "text", "text": f"fault test {self.message_id[:8]}"}
        )
        return {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "from": self.sender,
            "channels": list(self.channels),
            "payload": payload,
        }


CHANNEL_MIX = (("whatsapp",), ("instagram",), ("all",))


def plan(
    conversations: list[tuple[str, str, str]], count: int, seed: int = 7, *, per_client: int | None = None
) -> list[Planned]:
    """`count` text messages over the conversations, each from one of its two members, on a
    whatsapp / instagram / all mix. With `per_client=N`, message j goes to conversation j % N:
    sent by a `Load(..., sticky=True)` of N clients, each conversation then has one client
    sending its messages one after the other, so their acceptance order is known."""
    rng = random.Random(seed)
    if per_client is not None:
        assert per_client <= len(conversations), f"{per_client} clients need as many conversations"
    planned = []
    for index in range(count):
        if per_client is None:
            conversation_id, first, second = rng.choice(conversations)
        else:
            conversation_id, first, second = conversations[index % per_client]
        planned.append(
            Planned(str(uuid.uuid4()), conversation_id, rng.choice((first, second)), rng.choice(CHANNEL_MIX))
        )
    return planned


@dataclass
class Answer:
    outcome: str  # "accepted" (200), "error" (another status) or "no_answer"
    detail: str = ""
    api: str = ""


class Load:
    """Sends the planned messages from `clients` concurrent clients, each taking the next message
    as soon as its previous one was answered (closed loop). `targets(client_index)` names the API
    base URL a client uses; a client that got no answer may switch with `on_no_answer`."""

    def __init__(
        self,
        stack: Stack,
        planned: list[Planned],
        clients: int,
        targets: Callable[[int], str],
        *,
        on_no_answer: Callable[[int], None] | None = None,
        timeout: float = 30.0,
        sticky: bool = False,
        think_time: float = 0.0,
    ):
        self.stack = stack
        self.think_time = think_time  # a client's pause after each answer (0: as fast as answers come)
        self.planned = planned
        self.clients = clients
        self.targets = targets
        self.on_no_answer = on_no_answer
        self.timeout = timeout
        self.answers: dict[str, Answer] = {}
        self.started = 0.0
        self.finished = 0.0
        self._next = iter(planned)
        self.sticky = sticky  # client i sends planned[i], planned[i + clients], ... in that order
        self._progress = asyncio.Event()

    @property
    def answered(self) -> int:
        return len(self.answers)

    async def run(self) -> None:
        self.started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=self.clients, force_close=False)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
        ) as session:
            await asyncio.gather(*(self._client(session, index) for index in range(self.clients)))
        self.finished = time.monotonic()

    async def _client(self, session: aiohttp.ClientSession, index: int) -> None:
        for message in self.planned[index :: self.clients] if self.sticky else self._next:
            self.answers[message.message_id] = await send(session, self.targets(index), self.stack, message)
            self._progress.set()
            if self.answers[message.message_id].outcome == "no_answer" and self.on_no_answer is not None:
                self.on_no_answer(index)
            if self.think_time:
                await asyncio.sleep(self.think_time)

    async def until(self, answered: int) -> None:
        """Returns once `answered` messages were answered (or the whole burst was)."""
        while self.answered < min(answered, len(self.planned)):
            self._progress.clear()
            await self._progress.wait()

    def ids(self, outcome: str) -> list[str]:
        return [message_id for message_id, answer in self.answers.items() if answer.outcome == outcome]

    def figures(self) -> dict[str, int]:
        counts = Counter(answer.outcome for answer in self.answers.values())
        return {
            "sent": len(self.planned),
            "accepted": counts["accepted"],
            "errors": counts["error"],
            "no_answer": counts["no_answer"],
        }

    def unanswered(self, limit: int = 5) -> dict[str, str]:
        """A few of the messages that did not get a 200, with what they got instead."""
        odd = {key: f"{a.outcome}: {a.detail}" for key, a in self.answers.items() if a.outcome != "accepted"}
        return dict(list(odd.items())[:limit])

    def rate(self) -> float:
        return len(self.answers) / max(self.finished - self.started, 1e-9)


async def send(session: aiohttp.ClientSession, base_url: str, stack: Stack, message: Planned) -> Answer:
    try:
        async with session.post(
            f"{base_url}/v1/messages", json=message.body(), headers=stack.auth(message.sender)
        ) as response:
            text = await response.text()
            if response.status == 200:
                return Answer("accepted", api=base_url)
            return Answer("error", f"{response.status} {text[:300]}", base_url)
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
        return Answer("no_answer", f"{type(error).__name__}: {error}", base_url)


# ---------------------------------------------------------------------------------------------
# checking


@dataclass
class Report:
    messages: int = 0  # rows in the messages table
    delivered: int = 0
    failed: int = 0
    unfinished: int = 0
    lost: list[str] = field(default_factory=list)  # answered 200, not in the database
    unknown: list[str] = field(default_factory=list)  # in the database, never planned
    duplicate_lines: list[tuple] = field(default_factory=list)  # (message, recipient, channel, count)
    missing_lines: list[tuple] = field(default_factory=list)  # delivered channel, recipient without a line
    stray_lines: list[tuple] = field(default_factory=list)  # lines for a channel/recipient not owed one
    history_anomalies: list[str] = field(default_factory=list)
    failed_without_reason: list[str] = field(default_factory=list)
    failed_channels: list[tuple[str, str, str]] = field(default_factory=list)  # (message, channel, reason)
    out_of_order: list[str] | None = None  # checked only for loads with a known order per conversation
    lines: int = 0
    outbox_left: int = 0

    def problems(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "unknown": len(self.unknown),
            "unfinished": self.unfinished,
            "duplicates": len(self.duplicate_lines),
            "missing_lines": len(self.missing_lines),
            "stray_lines": len(self.stray_lines),
            "history_anomalies": len(self.history_anomalies),
            "failed_without_reason": len(self.failed_without_reason),
            **({"out_of_order": len(self.out_of_order)} if self.out_of_order is not None else {}),
        }

    def summary(self) -> str:
        shown = {"in_db": self.messages, "delivered": self.delivered, "failed": self.failed, **self.problems()}
        shown["connector_lines"] = self.lines
        return ", ".join(f"{key} {value}" for key, value in shown.items())

    def examples(self, limit: int = 5) -> str:
        parts = []
        for name in (
            "lost",
            "unknown",
            "duplicate_lines",
            "missing_lines",
            "stray_lines",
            "history_anomalies",
            "failed_without_reason",
            "out_of_order",
        ):
            values = getattr(self, name) or []
            if values:
                parts.append(f"{name}: {values[:limit]}")
        return "; ".join(parts)


def unfinished_count(database: str) -> tuple[int, int, int]:
    """(messages, unfinished messages, outbox rows)."""
    with psycopg.connect(admin_dsn(database), connect_timeout=5) as connection:
        total, unfinished = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status IN ('accepted', 'routed')) FROM messages"
        ).fetchone()
        outbox = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return total, unfinished, outbox


async def settle(stack: Stack, expected: int, *, timeout: float, stall: float | None = None, what: str = "") -> float:
    """Waits until at least `expected` messages exist and none is unfinished; returns the seconds
    it took. Gives up after `timeout` seconds, or sooner once the number of unfinished messages has
    not gone down for `stall` seconds (stuck, not slow); the checker then reports what is stuck."""
    started = shown = progressed = time.monotonic()
    best = None
    while True:
        total, unfinished, outbox = await asyncio.to_thread(unfinished_count, stack.database)
        now = time.monotonic()
        if total >= expected and unfinished == 0:
            return now - started
        if best is None or unfinished < best:
            best, progressed = unfinished, now
        if now - started > timeout or (stall is not None and now - progressed > stall):
            say(f"{what}: gave up with {unfinished} of {total} unfinished after {now - started:.0f}s")
            return now - started
        if now - shown >= 10:
            say(f"{what}: {now - started:.0f}s: {total} messages, {unfinished} unfinished, {outbox} in the outbox")
            shown = now
        stack.assert_alive()
        await asyncio.sleep(0.25)


def connector_lines(paths: Iterable[Path]) -> Counter[tuple[str, str, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            found = CONNECTOR_LINE.match(line)
            if found:
                message_id, recipient, display = found.groups()
                counts[(message_id, recipient, DISPLAY_TO_CHANNEL.get(display, display))] += 1
    return counts


def check(stack: Stack, planned: Iterable[Planned], must_exist: Iterable[str], *, ordered: bool = False) -> Report:
    """Everything the database and the worker logs say about this deployment's messages.

    `must_exist`: the ids the API answered 200 for (each must be in the database). `ordered`:
    each conversation's messages were sent one after the other (see `plan(per_client=...)`), so
    they must have been routed, and handled on each channel, in acceptance order."""
    planned_ids = {message.message_id for message in planned}
    report = Report()
    with psycopg.connect(admin_dsn(stack.database), connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT id::text, conversation_id::text, sender_id::text, recipient_id::text, channels, status"
            " FROM messages ORDER BY seq"
        ).fetchall()
        members: dict[str, set[str]] = defaultdict(set)
        for conversation_id, user_id in connection.execute(
            "SELECT conversation_id::text, user_id::text FROM conversation_members"
        ):
            members[conversation_id].add(user_id)
        deliveries: dict[str, dict[str, str]] = defaultdict(dict)
        for message_id, channel, status in connection.execute(
            "SELECT message_id::text, channel, status FROM message_deliveries"
        ):
            deliveries[message_id][channel] = status
        history: dict[str, list[tuple[str, str | None, str | None]]] = defaultdict(list)
        handled_at: dict[tuple[str, str | None], int] = {}  # (message, channel or None for routing) -> event id
        for event_id, message_id, status, channel, detail in connection.execute(
            "SELECT id, message_id::text, status, channel, detail FROM message_events ORDER BY id"
        ):
            history[message_id].append((status, channel, detail))
            if status == "routed" or (channel is not None and status in ("delivered", "failed")):
                handled_at.setdefault((message_id, channel), event_id)
        report.outbox_left = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]

    lines = connector_lines(stack.worker_logs())
    report.lines = sum(lines.values())
    owed: set[tuple[str, str, str]] = set()  # lines a delivered channel must have
    allowed: set[tuple[str, str, str]] = set()  # lines that may exist (a failed channel's partial sends)
    in_db = set()
    for message_id, conversation_id, sender, recipient, channels, status in rows:
        in_db.add(message_id)
        report.messages += 1
        if message_id not in planned_ids:
            report.unknown.append(message_id)
        if status == "delivered":
            report.delivered += 1
        elif status == "failed":
            report.failed += 1
        else:
            report.unfinished += 1
        recipients = [recipient] if recipient else sorted(members[conversation_id] - {sender})
        events = history[message_id]
        report.history_anomalies += _history_anomalies(message_id, status, list(channels), deliveries[message_id], events)
        for channel in channels:
            outcome = deliveries[message_id].get(channel)
            keys = {(message_id, user, channel) for user in recipients}
            if outcome == "delivered":
                owed |= keys
            allowed |= keys
            if outcome == "failed":
                reasons = [detail for state, where, detail in events if state == "failed" and where == channel]
                if not reasons or not all(reasons):
                    report.failed_without_reason.append(message_id)
                report.failed_channels.append((message_id, channel, (reasons or [""])[0] or ""))
    report.lost = sorted(set(must_exist) - in_db)
    if ordered:
        report.out_of_order = _out_of_order(rows, handled_at)
    for key, count in lines.items():
        if count > 1:
            report.duplicate_lines.append((*key, count))
        if key not in allowed:
            report.stray_lines.append(key)
    report.missing_lines = sorted(owed - set(lines))
    return report


def _out_of_order(rows: list[tuple], handled_at: dict[tuple[str, str | None], int]) -> list[str]:
    """Per conversation (rows come in acceptance order), the routing and each channel's outcome
    must be recorded in that order too."""
    found = []
    last: dict[tuple[str, str | None], tuple[int, str]] = {}  # (conversation, channel) -> (event id, message)
    for message_id, conversation_id, _, _, channels, _ in rows:
        for channel in [None, *channels]:
            at = handled_at.get((message_id, channel))
            if at is None:
                continue
            previous = last.get((conversation_id, channel))
            if previous is not None and previous[0] > at:
                found.append(f"{conversation_id} {channel or 'routing'}: {message_id} handled before {previous[1]}, accepted earlier")
            if previous is None or previous[0] < at:
                last[(conversation_id, channel)] = (at, message_id)
    return found


def _history_anomalies(
    message_id: str,
    status: str,
    channels: list[str],
    deliveries: dict[str, str],
    events: list[tuple[str, str | None, str | None]],
) -> list[str]:
    """One entry per transition: accepted, routed, one outcome per channel, one final status."""
    if status in UNFINISHED:
        return []  # reported as unfinished
    seen = Counter((state, where) for state, where, _ in events)
    expected = Counter({("accepted", None): 1, ("routed", None): 1, (status, None): 1})
    for channel in channels:
        expected[(deliveries.get(channel, "missing"), channel)] += 1
    if seen != expected:
        return [f"{message_id}: history {sorted(seen.items(), key=str)} != {sorted(expected.items(), key=str)}"]
    if events[0][0] != "accepted" or events[-1][:2] != (status, None):
        return [f"{message_id}: history out of order {events}"]
    return []


def print_figures(title: str, load: Load | None, report: Report, **extra: object) -> str:
    figures = {**(load.figures() if load else {}), **extra}
    text = ", ".join(f"{key} {value}" for key, value in figures.items())
    line = f"{title}: {text}; {report.summary()}"
    say(line)
    if report.examples():
        say(f"{title}: examples: {report.examples()}")
    return line


def assert_nothing_lost_nothing_doubled(figures: str, report: Report, stack: Stack) -> None:
    problems = {key: value for key, value in report.problems().items() if value}
    assert not problems, f"{figures}\nproblems: {problems}\n{report.examples()}\n{stack.diagnostics(1500)}"


async def final_check(
    stack: Stack, planned: Iterable[Planned], must_exist: Iterable[str], *, grace: float = 2.0, ordered: bool = False
) -> Report:
    """`check` after a short grace, so a connector line written just after the last status
    change (a concurrent duplicate delivery) is counted too."""
    await asyncio.sleep(grace)
    return await asyncio.to_thread(check, stack, list(planned), list(must_exist), ordered=ordered)


# ---------------------------------------------------------------------------------------------
# dead letters and files


async def end_offsets(topic: str) -> dict[int, int]:
    """partition -> end offset of an existing topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic, partition["partition"])
        for entry in described
        if entry["error_code"] == 0
        for partition in entry["partitions"]
    ]
    assert partitions, f"topic {topic} does not exist"
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def read_topic(topic: str, since: dict[int, int], timeout: float = 30.0) -> list[dict]:
    """Every record of `topic` from the offsets in `since` (partition -> offset) to its current end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from chat4all.adapters.kafka import decode_event

    until = await end_offsets(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, index) for index in until]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, since.get(tp.partition, 0))
        records: list[dict] = []
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < until[tp.partition]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end in {timeout}s"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += [decode_event(record.value) for record in batch]
        return records
    finally:
        await consumer.stop()


async def upload_file(base_url: str, headers: dict[str, str], data: bytes, filename: str) -> str:
    """A completed upload of `data` (one chunk); returns its file id."""
    import hashlib

    async with aiohttp.ClientSession(base_url, headers=headers) as session:
        async with session.post("/v1/files/initiate", json={"filename": filename, "file_size": len(data)}) as response:
            assert response.status == 201, await response.text()
            file_id = (await response.json())["file_id"]
        async with session.patch(
            "/v1/files/upload",
            params={"file_id": file_id, "chunk_id": "0"},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        ) as response:
            assert response.status == 200, await response.text()
        async with session.post(
            "/v1/files/complete", json={"file_id": file_id, "checksum": hashlib.sha256(data).hexdigest()}
        ) as response:
            assert response.status == 200, await response.text()
    return file_id


def delete_file_bytes(stack: Stack, file_id: str) -> None:
    """Removes a completed file's bytes from the bucket behind the hub's back."""
    import boto3

    from chat4all.adapters.storage.s3 import S3FileStorage

    client = boto3.client(
        "s3",
        endpoint_url=stack.env["CHAT4ALL_S3_ENDPOINT"],
        aws_access_key_id=stack.env["CHAT4ALL_S3_ACCESS_KEY"],
        aws_secret_access_key=stack.env["CHAT4ALL_S3_SECRET_KEY"],
        region_name="us-east-1",
    )
    bucket = stack.env["CHAT4ALL_S3_BUCKET"]
    key = S3FileStorage(client, bucket).file_key(uuid.UUID(file_id))
    client.head_object(Bucket=bucket, Key=key)
    client.delete_object(Bucket=bucket, Key=key)
