"""The load of the message benchmark: users and their clients set up, then messages sent in a closed
loop, an open loop or as fast as the connections allow, with every answer recorded."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp

from benchmarks.common import latency_summary

PASSWORD = "bench-password-1"


JSON = {"Content-Type": "application/json"}


async def create_users(env: dict[str, str], count: int, prefix: str) -> list[tuple[str, str]]:
    """(user_id, username) of `count` new users, made through the composition root with `env`'s settings."""
    from chat4all.entrypoints.cli import build_hub, migrate
    from chat4all.entrypoints.settings import load_settings

    settings = load_settings(env)
    if not settings.distributed:
        await migrate(settings)
    hub = build_hub(settings)
    try:
        names = [f"{prefix}{index:04d}" for index in range(count)]
        users = []
        for start in range(0, count, 4):  # argon2 runs in threads: a few at a time
            batch = names[start : start + 4]
            made = await asyncio.gather(*(hub.register_user.execute(name, PASSWORD) for name in batch))
            users += [(str(user.id), name) for user, name in zip(made, batch, strict=True)]
        return users
    finally:
        await hub.stop()


class Client:
    def __init__(self, index: int, user_id: str, token: str, conversation_id: str):
        self.index = index
        self.user_id = user_id
        self.headers = {**JSON, "Authorization": f"Bearer {token}"}
        self.auth = {"Authorization": f"Bearer {token}"}
        self.conversation_id = conversation_id

    def body(self, message_id: str, channels: list[str], text: str) -> bytes:
        return json.dumps({
            "message_id": message_id,
            "conversation_id": self.conversation_id,
            "from": self.user_id,
            "channels": channels,
            "payload": {"type": "text", "text": text},
        }).encode()


async def login(session: aiohttp.ClientSession, base: str, username: str) -> str:
    async with session.post(f"{base}/auth/token", json={"username": username, "password": PASSWORD}) as response:
        if response.status != 200:
            raise RuntimeError(f"login of {username} failed: {response.status} {await response.text()}")
        return (await response.json())["access_token"]


async def set_up_clients(session: aiohttp.ClientSession, base: str, env: dict[str, str], count: int,
                         users: int) -> list[Client]:
    """`count` clients over `users` senders; each client has a private conversation of its own.

    Client i is sender i % S talking to recipient i // S (S senders, ceil(count / S) recipients), so
    every client's sender/recipient pair, and with it its conversation (a Kafka key), is distinct.
    """
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    senders_count = max(1, min(users, count))
    recipients_count = -(-count // senders_count)
    made = await create_users(env, senders_count + recipients_count, prefix)
    senders, recipients = made[:senders_count], made[senders_count:]
    tokens = []
    for start in range(0, len(senders), 4):  # logins run argon2 on the server: a few at a time
        batch = senders[start : start + 4]
        tokens += await asyncio.gather(*(login(session, base, name) for _, name in batch))
    clients = []
    for index in range(count):
        (user_id, _), token = senders[index % senders_count], tokens[index % senders_count]
        recipient_id = recipients[index // senders_count][0]
        headers = {"Authorization": f"Bearer {token}"}
        body = {"type": "private", "members": [user_id, recipient_id]}
        async with session.post(f"{base}/v1/conversations", json=body, headers=headers) as response:
            if response.status not in (200, 201):
                raise RuntimeError(f"conversation failed: {response.status} {await response.text()}")
            conversation_id = (await response.json())["conversation_id"]
        clients.append(Client(index, user_id, token, conversation_id))
    return clients


class Results:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.started: list[float] = []  # perf_counter time each latency counts from, in the same order
        self.statuses: Counter[str] = Counter()
        self.accepted: list[tuple[str, int, float]] = []  # message id, client index, wall time of the answer
        self.dispatch_lag: list[float] = []
        self.first_start = 0.0
        self.last_end = 0.0


def _error_body(text: str) -> str:
    try:
        return json.loads(text).get("error_code") or text[:80]
    except ValueError:
        return text[:80]


async def send_one(session: aiohttp.ClientSession, url: str, client: Client, channels: list[str], results: Results,
                   started: float, error_samples: dict[str, str]) -> None:
    message_id = str(uuid.uuid4())
    try:
        async with session.post(url, data=client.body(message_id, channels, "benchmark message"),
                                headers=client.headers) as response:
            text = await response.text()
            status = str(response.status)
            if response.status != 200:
                error_samples.setdefault(status, _error_body(text))
    except (TimeoutError, aiohttp.ClientError) as error:
        status = type(error).__name__
        error_samples.setdefault(status, str(error)[:120])
    ended = time.perf_counter()
    results.latencies.append(ended - started)
    results.started.append(started)
    results.statuses[status] += 1
    results.last_end = max(results.last_end, ended)
    if status == "200":
        results.accepted.append((message_id, client.index, time.time()))


def by_second(results: Results) -> list[dict[str, Any]]:
    """p50/p99/max per second of sending (by when each request was due): warm-up and stalls show up here."""
    seconds: dict[int, list[float]] = {}
    for started, latency in zip(results.started, results.latencies, strict=True):
        seconds.setdefault(int(started - results.first_start), []).append(latency)
    return [
        {"second": second, **{key: summary[key] for key in ("count", "p50_ms", "p99_ms", "max_ms")}}
        for second, summary in sorted((second, latency_summary(values)) for second, values in seconds.items())
    ]


async def closed_loop(session: aiohttp.ClientSession, base: str, clients: list[Client], channels: list[str],
                      duration: float, errors: dict[str, str]) -> Results:
    results = Results()
    url = f"{base}/v1/messages"
    results.first_start = time.perf_counter()
    deadline = results.first_start + duration

    async def run(client: Client) -> None:
        while (now := time.perf_counter()) < deadline:
            await send_one(session, url, client, channels, results, now, errors)

    await asyncio.gather(*(run(client) for client in clients))
    return results


async def open_loop(session: aiohttp.ClientSession, base: str, clients: list[Client], channels: list[str],
                    duration: float, rate: float, errors: dict[str, str]) -> Results:
    """Message i is due at start + i/rate, whatever happened to the earlier ones; its latency counts from then."""
    results = Results()
    url = f"{base}/v1/messages"
    total = int(rate * duration)
    tasks: set[asyncio.Task] = set()
    start = time.perf_counter() + 0.01
    results.first_start = start
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        results.dispatch_lag.append(max(0.0, time.perf_counter() - due))
        task = asyncio.get_running_loop().create_task(
            send_one(session, url, clients[index % len(clients)], channels, results, due, errors)
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return results


async def ceiling(session: aiohttp.ClientSession, base: str, connections: int, duration: float) -> dict[str, Any]:
    """Closed loop against GET /health with the same session: the load generator's own limit."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    url = f"{base}/health"
    cpu_before = time.process_time()
    started = time.perf_counter()
    deadline = started + duration

    async def run() -> None:
        while (now := time.perf_counter()) < deadline:
            try:
                async with session.get(url) as response:
                    await response.read()
                    statuses[str(response.status)] += 1
            except (TimeoutError, aiohttp.ClientError) as error:
                statuses[type(error).__name__] += 1
            latencies.append(time.perf_counter() - now)

    await asyncio.gather(*(run() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {
        "endpoint": "GET /health",
        "duration_s": round(elapsed, 2),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "errors": {code: n for code, n in statuses.items() if code != "200"},
        "latency": latency_summary(latencies),
        "generator_cpu_percent_of_one_core": round(100 * (time.process_time() - cpu_before) / elapsed, 1),
    }
