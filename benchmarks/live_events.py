"""Live events over WebSockets against a throw-away deployment (`benchmarks.deploy`).

delivery: `--clients` WebSocket clients (one per user) in `--clients / 2` private conversations;
          an open loop sends `--rate` messages per second for `--seconds`, each from a random
          member into its conversation; for every message the latency from the start of its
          `POST /v1/messages` to its `message.created` frame on the recipient's socket.
idle:     `--idle` connected, authenticated, resumed and silent WebSockets: the API process's RSS
          before and after, and its CPU use over `--seconds` of silence.

    uv run python -m benchmarks.live_events --profile embedded --clients 200 --rate 100 --seconds 20
    uv run python -m benchmarks.live_events --profile embedded --idle 2000 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from benchmarks.common import latency_summary, make_session, write_json
from benchmarks.deploy import Deployment
from benchmarks.live_listeners import ListenerProcesses, LoopLag
from benchmarks.processes import CLOCK_TICKS, cpu_seconds, read_proc_status
from benchmarks.profiling import Recorder

PASSWORD = "bench-pass-word"
FAST = {"CHAT4ALL_ARGON2_TIME_COST": "1", "CHAT4ALL_ARGON2_MEMORY_KIB": "8192"}


async def make_users(deployment: Deployment, count: int) -> list[tuple[str, str]]:
    """(user id, token) of `count` new users, registered directly in the deployment's database."""
    from chat4all.entrypoints.bootstrap import build, serving_role
    from chat4all.entrypoints.settings import load_settings

    settings = load_settings(deployment.env)
    hub = build(serving_role(settings), settings)
    users = []
    try:
        async with make_session(64) as http:
            for _ in range(count):
                name = f"bench_{uuid.uuid4().hex[:12]}"
                user = await hub.register_user.execute(name, PASSWORD)
                async with http.post(f"{deployment.base_url}/auth/token", json={"username": name, "password": PASSWORD}) as answer:
                    users.append((str(user.id), (await answer.json())["access_token"]))
    finally:
        await hub.stop()
    return users


CLIENT_PING: float | None = 20.0  # the websockets library's default; browsers send no pings (`--client-ping 0`)


async def connect(url: str, token: str, since: int | None = None) -> websockets.ClientConnection:
    """A resumed WebSocket; a handshake the loaded machine dropped is tried again, up to five times."""
    for attempt in range(5):
        try:
            ws = await websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=60, ping_interval=CLIENT_PING
            )
            break
        except (websockets.InvalidMessage, OSError, TimeoutError):
            if attempt == 4:
                raise
            await asyncio.sleep(1.0)
    assert json.loads(await ws.recv())["type"] == "ready"
    await ws.send(json.dumps({"type": "resume", "since": since}))
    return ws


async def connect_all(deployment: Deployment, users: list[tuple[str, str]]) -> list[websockets.ClientConnection]:
    return await connect_all_at(deployment.base_url.replace("http://", "ws://") + "/v1/events/ws", users)


async def connect_all_at(url: str, users: list[tuple[str, str]], since: int | None = None) -> list[websockets.ClientConnection]:
    sockets: list[websockets.ClientConnection] = []
    for start in range(0, len(users), 100):  # a hundred at a time: a burst of handshakes is not what is measured
        sockets += await asyncio.gather(*(connect(url, token, since) for _, token in users[start : start + 100]))
    return sockets


async def delivery(deployment: Deployment, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    users = await make_users(deployment, clients)
    pairs = [(users[index], users[index + 1]) for index in range(0, len(users) - 1, 2)]
    async with make_session(256) as http:
        conversations = [await start_pair(http, deployment.base_url, a, b) for a, b in pairs]
        receivers = ListenerProcesses(deployment.base_url.replace("http://", "ws://") + "/v1/events/ws", users,
                                      LISTENER_PROCESSES, CLIENT_PING)
        await receivers.connect()
        started: dict[str, float] = {}
        answered: dict[str, float] = {}
        api_pid, load_before = deployment.pid("api"), os.getloadavg()[0]
        cpu = CpuShares({"api": api_pid, "sender": os.getpid()}, deployment.database)
        recorder = start_profiles({"api": api_pid}, seconds)
        receivers.measure()
        lag, began = LoopLag().start(), time.monotonic()
        sends = await open_loop(http, deployment.base_url, list(zip(pairs, conversations, strict=True)), rate, seconds, started, answered)
        await asyncio.sleep(2.0)  # the last messages' frames
        window_end = time.monotonic()
        shares, lag_summary = cpu.stop(), lag.stop()
        await asyncio.sleep(LATE_WATCH)  # what comes later still counts as late, not lost
        received = await receivers.stop()
        profiles = recorder.stop() if recorder else None
    arrived = received["arrived"]
    latencies = [arrived[key] - started[key] for key in started if arrived.get(key, window_end) < window_end]
    late = sorted(round(arrived[key] - started[key], 2) for key in started if arrived.get(key, 0) >= window_end)
    return {"clients": clients, "conversations": len(pairs), "rate": rate, "seconds": seconds, "sent": len(started),
            "failed_sends": sends, "delivered": len(latencies),
            # Frames after the window (2 s after the last send), within LATE_WATCH more seconds: their
            # latencies in seconds; `sent - delivered - len(late)` never came at all.
            "late_s": late, "post_start_to_socket": latency_summary(latencies),
            "post_start_to_answer": latency_summary(answered[key] - started[key] for key in answered),
            "to_socket_by_second": by_second(started, arrived, began),
            # The API process's CPU while sending, per accepted message: what the machine's other work
            # does not change, unlike the latencies.
            "api_cpu_ms_per_accepted": round(1000 * shares["api"] * shares["seconds"] / max(1, len(answered)), 2),
            "cpu_share_of_a_core": shares,
            # The load generator's own state: a late event loop delays the timestamps it takes.
            "sender_loop_lag": lag_summary,
            "listener_processes": LISTENER_PROCESSES, "listeners_cpu_share_of_a_core": received["cpu_share_of_a_core"],
            "listeners_loop_lag": received["loop_lag"],
            "sockets_closed_early": received["closed_early"], "sockets_ended": received["ended"],
            "profiles": profiles,
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)]}


def by_second(started: dict[str, float], arrived: dict[str, float], began: float) -> list[list[float | None]]:
    """[second of sending, p50 ms, p95 ms, messages that never reached the recipient's socket] of
    the messages sent in each second: warm-up, saturation, or losses and when."""
    seconds: dict[int, list[float]] = {}
    missing: dict[int, int] = {}
    for key, at in started.items():
        second = int(at - began)
        seconds.setdefault(second, [])
        if key in arrived:
            seconds[second].append(arrived[key] - at)
        else:
            missing[second] = missing.get(second, 0) + 1
    rows = []
    for second in sorted(seconds):
        summary = latency_summary(seconds[second])
        rows.append([second, summary["p50_ms"], summary["p95_ms"], missing.get(second, 0)])
    return rows


class CpuShares:
    """Shares of a core used by the named processes, the deployment's PostgreSQL backends (those
    connected to its database) and the whole machine, from now to `stop`."""

    def __init__(self, pids: dict[str, int | None], database: str | None) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid}
        self._database = database
        self._began = time.monotonic()
        self._before = self._sample()

    def _backends(self) -> float:
        if self._database is None:
            return 0.0
        total = 0.0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                        if self._database.encode() in cmdline.read():
                            total += cpu_seconds(int(entry))
                except OSError:
                    continue
        return total

    def _sample(self) -> dict[str, float]:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
        busy = (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS
        return {**{name: cpu_seconds(pid) for name, pid in self._pids.items()}, "postgres": self._backends(),
                "machine": busy}

    def stop(self) -> dict[str, float]:
        after, elapsed = self._sample(), time.monotonic() - self._began
        shares = {name: round((after[name] - self._before[name]) / elapsed, 3) for name in after}
        return {**shares, "seconds": round(elapsed, 2)}


PROFILE_DIR: str | None = None
LISTENER_PROCESSES = 2
LATE_WATCH = 8.0  # seconds: past the live connections' 5-second check, which catches up a lost wake-up


def start_profiles(pids: dict[str, int], seconds: float) -> Recorder | None:
    """py-spy of the given processes while sending (`--profile-dir`)."""
    if PROFILE_DIR is None:
        return None
    recorder = Recorder(Path(PROFILE_DIR), pids, seconds)
    recorder.start()
    return recorder


async def start_pair(http: aiohttp.ClientSession, base: str, a: tuple[str, str], b: tuple[str, str]) -> str:
    body = {"type": "private", "members": [a[0], b[0]]}
    async with http.post(f"{base}/v1/conversations", json=body, headers={"Authorization": f"Bearer {a[1]}"}) as answer:
        return (await answer.json())["conversation_id"]


async def open_loop(
    http, base: str, scene: list, rate: float, seconds: float, started: dict[str, float], answered: dict[str, float],
    sent_to: dict[str, str] | None = None,
) -> int:
    """Sends on schedule whatever the answers' latency (open loop); returns how many sends failed.
    `sent_to`: filled with each message's conversation."""
    failures = 0

    async def send_one(pair, conversation: str) -> None:
        nonlocal failures
        sender = random.choice(pair)
        message_id = str(uuid.uuid4())
        body = {"message_id": message_id, "conversation_id": conversation, "from": sender[0], "channels": ["whatsapp"],
                "payload": {"type": "text", "text": "benchmark"}}
        started[message_id] = time.monotonic()
        if sent_to is not None:
            sent_to[message_id] = conversation
        try:
            async with http.post(f"{base}/v1/messages", json=body, headers={"Authorization": f"Bearer {sender[1]}"}) as answer:
                accepted = answer.status == 200
        except (TimeoutError, aiohttp.ClientError):  # a saturated server: counted, not the end of the run
            accepted = False
        if accepted:
            answered[message_id] = time.monotonic()
        else:
            failures += 1
            started.pop(message_id, None)

    tasks, begin = [], time.monotonic()
    for index in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + index / rate - time.monotonic()))
        pair, conversation = random.choice(scene)
        tasks.append(asyncio.create_task(send_one(pair, conversation)))
    await asyncio.gather(*tasks)
    return failures


async def idle(deployment: Deployment, count: int, seconds: float, settle: float) -> dict[str, Any]:
    pid = deployment.pid("api")
    users = await make_users(deployment, max(1, count // 10))  # ten sockets per user: the per-user limit
    before = read_proc_status(pid)["VmRSS"]
    sockets = await connect_all(deployment, [users[index // 10] for index in range(count)])
    await asyncio.sleep(settle)  # each new connection reads its log once: let that pass
    connected = read_proc_status(pid)["VmRSS"]
    cpu_before, began = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - began)
    alive = sum(1 for ws in sockets if ws.state is websockets.State.OPEN)
    for ws in sockets:
        await ws.close()
    return {"connections": count, "open_at_end": alive, "rss_before_mib": round(before / 2**20, 1),
            "rss_connected_mib": round(connected / 2**20, 1), "rss_per_connection_kib": round((connected - before) / count / 1024, 1),
            "idle_cpu_share_of_a_core": round(cpu, 4), "idle_seconds": seconds, "settle_seconds": settle}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle", type=int, default=0, help="measure this many idle connections instead")
    parser.add_argument("--settle", type=float, default=30.0, help="idle: seconds between connecting and measuring")
    parser.add_argument("--env", action="append", default=[], metavar="CHAT4ALL_X=VALUE", help="a setting of the server")
    parser.add_argument("--client-ping", type=float, default=20.0, help="seconds between the clients' own pings (0: none)")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--listener-processes", type=int, default=2,
                        help="processes holding the clients' sockets (apart from the one that sends)")
    parser.add_argument("--profile-dir", help="py-spy the API process and this one while sending, into this directory")
    args = parser.parse_args()
    global CLIENT_PING, PROFILE_DIR, LISTENER_PROCESSES
    LISTENER_PROCESSES = args.listener_processes
    CLIENT_PING = args.client_ping or None
    PROFILE_DIR = args.profile_dir
    limits = {"CHAT4ALL_HTTP_MAX_CONNECTIONS": str(max(1000, 2 * (args.idle or args.clients) + 100)),
              "CHAT4ALL_EVENTS_MAX_CONNECTIONS": str(max(800, (args.idle or args.clients) + 50))}
    limits.update(dict(setting.split("=", 1) for setting in args.env))
    with Deployment(args.profile, extra_env={**FAST, **limits}, worker=False) as deployment:
        run = idle(deployment, args.idle, args.seconds, args.settle) if args.idle else delivery(deployment, args.clients, args.rate, args.seconds)
        result = {"profile": args.profile, "settings": limits, "client_ping_s": CLIENT_PING, **asyncio.run(run)}
    print(json.dumps(result, indent=2))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
