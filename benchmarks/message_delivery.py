"""What the message benchmark reads once the load is over: every message settled (or the wait given
up), and from the histories when each was delivered."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import datetime
from typing import Any

import aiohttp

from benchmarks.common import latency_summary
from benchmarks.message_load import Client

TERMINAL = ("delivered", "failed")


async def fetch_json(session: aiohttp.ClientSession, url: str, headers: dict[str, str], attempts: int = 5) -> Any:
    for attempt in range(attempts):
        try:
            async with session.get(url, headers=headers) as response:
                if response.status == 200:
                    return await response.json()
                if response.status < 500 and response.status != 429:
                    raise RuntimeError(f"GET {url}: {response.status} {await response.text()}")
        except (TimeoutError, aiohttp.ClientError):
            if attempt == attempts - 1:
                raise
        await asyncio.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"GET {url} kept failing")


async def wait_drained(session: aiohttp.ClientSession, base: str, clients: list[Client], timeout: float,
                       interval: float = 0.5) -> dict[str, Any]:
    """Sweeps every conversation's listing (oldest first) until all its messages are delivered or failed."""
    offsets = {client.index: 0 for client in clients}
    totals: dict[int, int] = {}
    pending = {client.index: client for client in clients}
    started = time.perf_counter()
    deadline = started + timeout
    limiter = asyncio.Semaphore(8)
    sweeps = 0

    async def sweep(client: Client) -> None:
        async with limiter:
            while True:
                url = f"{base}/v1/conversations/{client.conversation_id}/messages?limit=100&offset={offsets[client.index]}"
                page = await fetch_json(session, url, client.auth)
                totals[client.index] = page["total"]
                done = 0
                for message in page["messages"]:
                    if message["status"] not in TERMINAL:
                        break
                    done += 1
                offsets[client.index] += done
                if offsets[client.index] >= page["total"]:
                    pending.pop(client.index, None)
                    return
                if done < len(page["messages"]) or not page["messages"]:
                    return

    while pending and time.perf_counter() < deadline:
        sweeps += 1
        await asyncio.gather(*(sweep(client) for client in list(pending.values())))
        if pending:
            await asyncio.sleep(interval)
    remaining = sum(totals.get(index, 0) - offsets[index] for index in pending)
    return {
        "drained": not pending,
        "observed_s": round(time.perf_counter() - started, 2),
        "sweeps": sweeps,
        "not_terminal_at_timeout": remaining,
        "messages_listed": sum(totals.values()),
    }


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def fetch_histories(session: aiohttp.ClientSession, base: str, clients: list[Client],
                          accepted: list[tuple[str, int, float]], sample: int, concurrency: int) -> list[dict]:
    """History times of all accepted messages, or of a random sample plus each conversation's last message."""
    chosen = list(accepted)
    if sample and len(chosen) > sample:
        last = {}
        for message_id, index, answered in accepted:
            if index not in last or answered >= last[index][2]:
                last[index] = (message_id, index, answered)
        chosen = random.Random(7).sample(accepted, sample)
        ids = {message_id for message_id, _, _ in chosen}
        chosen += [entry for entry in last.values() if entry[0] not in ids]
    by_index = {client.index: client for client in clients}
    limiter = asyncio.Semaphore(concurrency)
    out: list[dict] = []

    async def one(message_id: str, index: int) -> None:
        async with limiter:
            body = await fetch_json(session, f"{base}/v1/messages/{message_id}", by_index[index].auth)
        accepted_at = final_at = None
        for entry in body.get("history", []):
            if entry["status"] == "accepted" and accepted_at is None:
                accepted_at = _epoch(entry["at"])
            if entry["status"] in TERMINAL and entry.get("channel") is None:
                final_at = _epoch(entry["at"])
        out.append({"status": body["status"], "accepted_at": accepted_at, "final_at": final_at})

    await asyncio.gather(*(one(message_id, index) for message_id, index, _ in chosen))
    return out


def delivery_report(histories: list[dict], accepted_total: int, send_start_wall: float, send_end_wall: float
                    ) -> dict[str, Any]:
    statuses = Counter(entry["status"] for entry in histories)
    delivered = [e for e in histories if e["status"] == "delivered" and e["final_at"] and e["accepted_at"]]
    finals = [e["final_at"] for e in histories if e["final_at"]]
    accepts = [e["accepted_at"] for e in histories if e["accepted_at"]]
    report: dict[str, Any] = {
        "sampled": len(histories),
        "accepted_total": accepted_total,
        "statuses": dict(statuses),
        "accept_to_delivered": latency_summary(e["final_at"] - e["accepted_at"] for e in delivered),
    }
    if finals and accepts:
        last_final = max(finals)
        report["drain_s"] = round(max(0.0, last_final - send_end_wall), 3)
        span = last_final - min(accepts)
        report["delivered_per_s_overall"] = round(accepted_total / span, 1) if span > 0 else None
        # backlog over time, rebuilt from the sample's times and scaled to all accepted messages
        scale = accepted_total / len(histories)
        accepts.sort()
        finals.sort()
        seconds = int(send_end_wall - send_start_wall) + 1
        backlog = []
        import bisect

        for second in range(1, seconds + 1):
            moment = min(send_start_wall + second, send_end_wall)
            backlog.append(round((bisect.bisect_right(accepts, moment) - bisect.bisect_right(finals, moment)) * scale))
        terminal_during_send = bisect.bisect_right(finals, send_end_wall) * scale
        report["delivered_per_s_during_send"] = round(terminal_during_send / max(send_end_wall - send_start_wall, 1e-9), 1)
        report["backlog_per_second"] = backlog
        report["backlog_at_end_of_send"] = backlog[-1] if backlog else 0
        report["backlog_max"] = max(backlog) if backlog else 0
        half = backlog[len(backlog) // 2 :]
        if len(half) >= 2:
            report["backlog_growth_per_s_second_half"] = round((half[-1] - half[0]) / (len(half) - 1), 1)
    return report
