"""Resume under load: WebSocket clients disconnected for a while during an open loop of messages
get every event they missed when they reconnect, in order, once.

`--clients` users (one WebSocket each, resumed from the head of their log) in `--clients / 2`
private conversations; an open loop sends `--rate` messages per second for `--seconds`. A third
of the way in, `--share` of the clients close their sockets; `--away` seconds later they reconnect
(to the same API process) and resume from the last seq they received. At the end every user's
stored frames, over both of their sockets, must be the seqs right after the head they started
from, each once and in order (`out_of_order` counts the users for whom not), and every message
accepted into a user's conversation must have reached them (`missed`: (user, message) pairs).

    uv run python -m benchmarks.live_resume --profile embedded --clients 1000 --rate 200 --seconds 30 --away 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from typing import Any

import websockets

from benchmarks import live_events
from benchmarks.common import make_session, write_json
from benchmarks.deploy import Deployment
from benchmarks.live_events import FAST, connect, make_users, open_loop, start_pair

Frames = list[tuple[int, str | None]]  # (seq, message id of a message.created)


async def record(ws: websockets.ClientConnection, frames: Frames, resyncs: list[str]) -> None:
    async for text in ws:
        frame = json.loads(text)
        if "seq" in frame:
            created = frame["type"] == "message.created"
            frames.append((frame["seq"], frame["data"]["message_id"] if created else None))
        elif frame.get("type") == "resync":
            resyncs.append(frame["reason"])


async def heads(http, base: str, users: list[tuple[str, str]]) -> dict[str, int]:
    """Where each user's log ends now (a long poll without a cursor, not waiting)."""
    found = {}
    for user_id, token in users:
        async with http.get(f"{base}/v1/events", params={"timeout": "0"}, headers={"Authorization": f"Bearer {token}"}) as answer:
            found[user_id] = (await answer.json())["next"]
    return found


async def connect_from(url: str, users: list[tuple[str, str]], since: dict[str, int]) -> dict[str, Any]:
    sockets = {}
    for start in range(0, len(users), 100):
        batch = users[start : start + 100]
        opened = await asyncio.gather(*(connect(url, token, since[user_id]) for user_id, token in batch))
        sockets.update({user_id: ws for (user_id, _), ws in zip(batch, opened, strict=True)})
    return sockets


def check(users, pairs, conversations, started, answered, frames: dict[str, Frames], start: dict[str, int]) -> dict[str, int]:
    members = {conversation: (a[0], b[0]) for (a, b), conversation in zip(pairs, conversations, strict=True)}
    missed = out_of_order = duplicated = 0
    expected: dict[str, set[str]] = {user_id: set() for user_id, _ in users}
    for message_id, conversation in started.items():
        if message_id in answered:
            for member in members[conversation]:
                expected[member].add(message_id)
    for user_id, _ in users:
        seqs = [seq for seq, _ in frames[user_id]]
        if seqs != list(range(start[user_id] + 1, start[user_id] + 1 + len(seqs))):
            out_of_order += 1
        got = [message_id for _, message_id in frames[user_id] if message_id is not None]
        duplicated += len(got) - len(set(got))
        missed += len(expected[user_id] - set(got))
    return {"missed": missed, "out_of_order_users": out_of_order, "duplicated": duplicated}


async def run(deployment: Deployment, clients: int, rate: float, seconds: float, away: float, share: float) -> dict[str, Any]:
    users = await make_users(deployment, clients)
    pairs = [(users[index], users[index + 1]) for index in range(0, len(users) - 1, 2)]
    url = deployment.base_url.replace("http://", "ws://") + "/v1/events/ws"
    async with make_session(256) as http:
        conversations = [await start_pair(http, deployment.base_url, a, b) for a, b in pairs]
        start = await heads(http, deployment.base_url, users)
        sockets = await connect_from(url, users, start)
        frames: dict[str, Frames] = {user_id: [] for user_id, _ in users}
        resyncs: list[str] = []
        listeners = {user_id: asyncio.create_task(record(ws, frames[user_id], resyncs)) for user_id, ws in sockets.items()}
        started: dict[str, str] = {}  # message id -> conversation
        sent_at: dict[str, float] = {}
        answered: dict[str, float] = {}
        scene = list(zip(pairs, conversations, strict=True))
        sending = asyncio.create_task(open_loop(http, deployment.base_url, scene, rate, seconds, sent_at, answered, started))
        await asyncio.sleep(seconds / 3)
        leaving = random.sample(users, int(share * len(users)))
        for user_id, _ in leaving:
            listeners[user_id].cancel()
            await sockets[user_id].close()
        await asyncio.sleep(away)
        cursors = {user_id: frames[user_id][-1][0] if frames[user_id] else start[user_id] for user_id, _ in leaving}
        back = await connect_from(url, leaving, cursors)
        for user_id, ws in back.items():
            sockets[user_id] = ws
            listeners[user_id] = asyncio.create_task(record(ws, frames[user_id], resyncs))
        failed = await sending
        await asyncio.sleep(5.0)  # the last frames
        for task in listeners.values():
            task.cancel()
        for ws in sockets.values():
            await ws.close()
    outcome = check(users, pairs, conversations, started, answered, frames, start)
    return {"clients": clients, "conversations": len(pairs), "rate": rate, "seconds": seconds, "away_s": away,
            "disconnected": len(leaving), "sent": len(sent_at), "accepted": len(answered), "failed_sends": failed,
            "frames": sum(len(got) for got in frames.values()), "resyncs": len(resyncs), **outcome}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--away", type=float, default=10.0, help="seconds the disconnected clients stay away")
    parser.add_argument("--share", type=float, default=0.5, help="the share of clients that disconnect")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    live_events.CLIENT_PING = None
    limits = {"CHAT4ALL_HTTP_MAX_CONNECTIONS": str(max(1000, 2 * args.clients + 200)),
              "CHAT4ALL_EVENTS_MAX_CONNECTIONS": str(max(800, args.clients + 50))}
    with Deployment(args.profile, extra_env={**FAST, **limits}, worker=False) as deployment:
        result = {"profile": args.profile, **asyncio.run(run(deployment, args.clients, args.rate, args.seconds, args.away, args.share))}
    print(json.dumps(result, indent=2))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
