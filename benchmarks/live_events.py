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
from typing import Any

import aiohttp
import websockets

from benchmarks.common import latency_summary, make_session, write_json
from benchmarks.deploy import Deployment
from benchmarks.processes import cpu_seconds, read_proc_status

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
    url = deployment.base_url.replace("http://", "ws://") + "/v1/events/ws"
    sockets: list[websockets.ClientConnection] = []
    for start in range(0, len(users), 100):  # a hundred at a time: a burst of handshakes is not what is measured
        sockets += await asyncio.gather(*(connect(url, token) for _, token in users[start : start + 100]))
    return sockets


async def delivery(deployment: Deployment, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    users = await make_users(deployment, clients)
    pairs = [(users[index], users[index + 1]) for index in range(0, len(users) - 1, 2)]
    async with make_session(256) as http:
        conversations = [await start_pair(http, deployment.base_url, a, b) for a, b in pairs]
        sockets = await connect_all(deployment, users)
        started: dict[str, float] = {}
        answered: dict[str, float] = {}
        arrived: dict[str, float] = {}
        listeners = [asyncio.create_task(listen(ws, user_id, arrived)) for ws, (user_id, _) in zip(sockets, users, strict=True)]
        api_pid, load_before = deployment.pid("api"), os.getloadavg()[0]
        cpu_before = cpu_seconds(api_pid)
        sends = await open_loop(http, deployment.base_url, list(zip(pairs, conversations, strict=True)), rate, seconds, started, answered)
        await asyncio.sleep(2.0)  # the last messages' frames
        api_cpu = cpu_seconds(api_pid) - cpu_before
        for task in listeners:
            task.cancel()
        for ws in sockets:
            await ws.close()
    latencies = [arrived[key] - started[key] for key in started if key in arrived]
    return {"clients": clients, "conversations": len(pairs), "rate": rate, "seconds": seconds, "sent": len(started),
            "failed_sends": sends, "delivered": len(latencies), "post_start_to_socket": latency_summary(latencies),
            "post_start_to_answer": latency_summary(answered[key] - started[key] for key in answered),
            # The API process's CPU while sending, per accepted message: what the machine's other work
            # does not change, unlike the latencies.
            "api_cpu_ms_per_accepted": round(1000 * api_cpu / max(1, len(answered)), 2),
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)]}


async def start_pair(http: aiohttp.ClientSession, base: str, a: tuple[str, str], b: tuple[str, str]) -> str:
    body = {"type": "private", "members": [a[0], b[0]]}
    async with http.post(f"{base}/v1/conversations", json=body, headers={"Authorization": f"Bearer {a[1]}"}) as answer:
        return (await answer.json())["conversation_id"]


async def listen(ws: websockets.ClientConnection, user_id: str, arrived: dict[str, float]) -> None:
    """When each message reached its recipient's socket (the sender's own copy is not counted)."""
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") == "message.created" and frame["data"]["from"] != user_id:
            arrived.setdefault(frame["data"]["message_id"], time.monotonic())


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
    args = parser.parse_args()
    global CLIENT_PING
    CLIENT_PING = args.client_ping or None
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
