"""Outbound webhooks against a throw-away deployment (`benchmarks.deploy`), delivering to a local
aiohttp receiver (CHAT4ALL_WEBHOOK_ALLOW_PRIVATE=true).

latency:    `--pairs` private conversations, every user with a webhook on `message.created`; an
            open loop sends `--rate` messages per second for `--seconds`, each from a random member;
            for every message the time from the start of its `POST /v1/messages` to the recipient's
            webhook request arriving at the receiver.
throughput: one user's webhook is paused while `--backlog` messages are sent to them; it is then
            enabled, and the receiver counts the deliveries per second until all have arrived
            (feeding and sending, to one endpoint, at the default per-endpoint concurrency).

    uv run python -m benchmarks.webhooks --profile embedded --mode latency --rate 200 --seconds 20
    uv run python -m benchmarks.webhooks --profile embedded --mode throughput --backlog 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from typing import Any

from aiohttp import web

from benchmarks.common import latency_summary, make_session, write_json
from benchmarks.deploy import Deployment
from benchmarks.live_events import FAST, make_users, open_loop, start_pair
from benchmarks.ports import low_port


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # message id -> first arrival
        self.requests = 0
        self.url = ""
        self.arrival = asyncio.Event()  # set at every request, cleared by whoever waits on it

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.requests += 1
        self.arrived.setdefault(body["data"]["message_id"], time.monotonic())
        self.arrival.set()
        return web.Response(status=204)

    async def until_arrived(self, count: int, timeout: float) -> None:
        """Returns once `count` messages arrived, or after `timeout` seconds (the result says how many)."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.arrived) < count:
                    self.arrival.clear()
                    await self.arrival.wait()
        except TimeoutError:
            pass

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = low_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return runner


async def add_webhook(http, base: str, token: str, url: str) -> str:
    body = {"url": url, "events": ["message.created"], "description": "benchmark"}
    async with http.post(f"{base}/v1/webhooks", json=body, headers={"Authorization": f"Bearer {token}"}) as answer:
        assert answer.status == 201, await answer.text()
        return (await answer.json())["id"]


async def latency(deployment: Deployment, pairs: int, rate: float, seconds: float) -> dict[str, Any]:
    receiver = Receiver()
    runner = await receiver.start()
    users = await make_users(deployment, pairs * 2)
    couples = [(users[index], users[index + 1]) for index in range(0, len(users), 2)]
    try:
        async with make_session(256) as http:
            for _, token in users:
                await add_webhook(http, deployment.base_url, token, receiver.url)
            scene = [(pair, await start_pair(http, deployment.base_url, *pair)) for pair in couples]
            started: dict[str, float] = {}
            answered: dict[str, float] = {}
            failed = await open_loop(http, deployment.base_url, scene, rate, seconds, started, answered)
            await asyncio.sleep(5.0)  # the last messages' deliveries
    finally:
        await runner.cleanup()
    waits = [receiver.arrived[key] - started[key] for key in started if key in receiver.arrived]
    return {"pairs": pairs, "rate": rate, "seconds": seconds, "sent": len(started), "failed_sends": failed,
            "delivered": len(waits), "post_start_to_webhook": latency_summary(waits),
            "post_start_to_answer": latency_summary(answered[key] - started[key] for key in answered)}


async def throughput(deployment: Deployment, backlog: int) -> dict[str, Any]:
    receiver = Receiver()
    runner = await receiver.start()
    (owner_id, owner), (peer_id, peer) = await make_users(deployment, 2)
    base = deployment.base_url
    try:
        async with make_session(64) as http:
            webhook = await add_webhook(http, base, owner, receiver.url)
            auth = {"Authorization": f"Bearer {owner}"}
            async with http.post(f"{base}/v1/webhooks/{webhook}/disable", headers=auth) as answer:
                assert answer.status == 200
            conversation = await start_pair(http, base, (peer_id, peer), (owner_id, owner))
            await send_backlog(http, base, conversation, (peer_id, peer), backlog)
            await asyncio.sleep(2.0)  # the last messages' events are in the log
            enabled = time.monotonic()
            async with http.post(f"{base}/v1/webhooks/{webhook}/enable", headers=auth) as answer:
                assert answer.status == 200
            await receiver.until_arrived(backlog, timeout=600)
    finally:
        await runner.cleanup()
    times = sorted(receiver.arrived.values())
    span = times[-1] - times[0] if len(times) > 1 else None
    return {"backlog": backlog, "delivered": len(times), "requests": receiver.requests,
            "enable_to_last_seconds": round(times[-1] - enabled, 2) if times else None,
            "deliveries_per_second": round((len(times) - 1) / span, 1) if span else None}


async def send_backlog(http, base: str, conversation: str, sender: tuple[str, str], count: int) -> None:
    async def send(batch: range) -> None:
        for _ in batch:
            body = {"message_id": str(uuid.uuid4()), "conversation_id": conversation, "from": sender[0],
                    "channels": ["whatsapp"], "payload": {"type": "text", "text": "backlog"}}
            async with http.post(f"{base}/v1/messages", json=body, headers={"Authorization": f"Bearer {sender[1]}"}) as answer:
                assert answer.status == 200, await answer.text()

    await asyncio.gather(*(send(range(start, count, 16)) for start in range(16)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--mode", choices=("latency", "throughput"), default="latency")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    random.seed(7)
    env = {**FAST, "CHAT4ALL_WEBHOOK_ALLOW_PRIVATE": "true"}
    with Deployment(args.profile, extra_env=env, worker=args.profile == "distributed") as deployment:
        run = latency(deployment, args.pairs, args.rate, args.seconds) if args.mode == "latency" else throughput(deployment, args.backlog)
        result = {"profile": args.profile, "mode": args.mode, **asyncio.run(run)}
    print(json.dumps(result, indent=2))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
