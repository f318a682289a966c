"""Message benchmark: N concurrent clients send text messages through `POST /v1/messages`.

    uv run python -m benchmarks.messages --base-url http://127.0.0.1:8000 --env-file deploy.env \\
        [--clients 50] [--mode closed|open] [--rate 200] [--duration 60] [--json out.json]

Users: the tool creates its own (one sender per client plus one shared recipient) by importing the
composition root with the deployment's settings (CHAT4ALL_* variables from --env-file, or from the
environment when it is not given) - exactly what `chat4all users add` does, without a process per
user. Each sender logs in over HTTP and opens a private conversation with the recipient, so there
are as many conversations (Kafka keys) as clients.

Phases, in one run and with the same client set-up (one aiohttp ClientSession, a TCPConnector with
`--clients` keep-alive connections):
  1. ceiling: closed loop against `GET /health` for --ceiling-duration seconds: what this load
     generator plus the HTTP stack can do at all on this machine;
  2. send: closed loop (every client sends its next message as soon as the previous answer came
     back) or open loop (--rate messages per second in total, each scheduled by the wall clock;
     its latency is measured from the scheduled time, so queueing in the client counts: no
     coordinated omission);
  3. drain: polls the conversations' message listings until every message is delivered or failed;
  4. history: `GET /v1/messages/{id}` for all messages (or a --history-sample of them, always
     including each conversation's last message) and accept->delivered latency from the status
     history's `at` times (the accepted entry vs the final delivered entry); the drain time is the
     last final `at` minus the end of sending, and the backlog over time is rebuilt from the same
     times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import (
    MachineCpu,
    ProcessSampler,
    find_listening_pid,
    latency_summary,
    load_env_file,
    make_session,
    parse_pids,
    table,
    write_json,
)

PASSWORD = "bench-password-1"
TERMINAL = ("delivered", "failed")
JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------------------------
# set-up


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


# ---------------------------------------------------------------------------------------------
# load


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


# ---------------------------------------------------------------------------------------------
# after the load


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


# ---------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = args.base_url.rstrip("/")
    env = {**os.environ, **(load_env_file(args.env_file) if args.env_file else {})}
    channels = [channel for channel in args.channels.split(",") if channel]
    pids = parse_pids(args.pid)
    if not pids:
        port = int(base.rsplit(":", 1)[1].split("/")[0]) if base.count(":") == 2 else 80
        found = find_listening_pid(port)
        if found:
            pids = {"api": found}
    sampler_pids = {**pids, "loadgen": os.getpid()}
    async with make_session(args.clients) as session:
        set_up_started = time.perf_counter()
        clients = await set_up_clients(session, base, env, args.clients, args.users)
        set_up_s = time.perf_counter() - set_up_started
        ceiling_report = await ceiling(session, base, args.clients, args.ceiling_duration) if args.ceiling_duration else None
        errors: dict[str, str] = {}
        sampler = ProcessSampler(sampler_pids, interval=0.5)
        sampler.start()
        machine = MachineCpu(sampler_pids)
        machine.start()
        recorder = None
        if args.py_spy:
            from benchmarks.profiling import Recorder

            recorder = Recorder(Path(args.py_spy), pids, duration=max(1.0, args.duration - 1))
            recorder.start()
        send_start_wall = time.time()
        if args.mode == "closed":
            results = await closed_loop(session, base, clients, channels, args.duration, errors)
        else:
            results = await open_loop(session, base, clients, channels, args.duration, args.rate, errors)
        send_end_wall = time.time()
        sampler.stop()
        machine.stop()
        profiles = await asyncio.to_thread(recorder.stop) if recorder else None
        elapsed = results.last_end - results.first_start
        accepted = len(results.accepted)
        per_second = Counter(int(answered - send_start_wall) for _, _, answered in results.accepted)
        send = {
            "duration_s": round(elapsed, 2),
            "requests": sum(results.statuses.values()),
            "accepted": accepted,
            "accepted_per_s": round(accepted / elapsed, 1) if elapsed > 0 else None,
            "accepted_per_second_timeline": [per_second.get(s, 0) for s in range(int(elapsed) + 1)],
            "errors": {code: n for code, n in results.statuses.items() if code != "200"},
            "error_count": sum(n for code, n in results.statuses.items() if code != "200"),
            "error_samples": errors,
            "acceptance_latency": latency_summary(results.latencies),
            "acceptance_latency_by_second": by_second(results),
        }
        if args.mode == "open":
            send["target_rate_per_s"] = args.rate
            send["scheduled"] = int(args.rate * args.duration)
            send["dispatch_lag"] = latency_summary(results.dispatch_lag)
        drain = await wait_drained(session, base, clients, args.drain_timeout)
        history_started = time.perf_counter()
        histories = await fetch_histories(session, base, clients, results.accepted, args.history_sample, args.clients)
        delivery = delivery_report(histories, accepted, send_start_wall, send_end_wall)
        delivery["drain_poll"] = drain
        delivery["history_fetch_s"] = round(time.perf_counter() - history_started, 2)
    return {
        "tool": "messages",
        "base_url": base,
        "started_at": datetime.fromtimestamp(send_start_wall).astimezone().isoformat(timespec="seconds"),
        "config": {
            "mode": args.mode, "clients": args.clients, "duration_s": args.duration,
            "rate_per_s": args.rate if args.mode == "open" else None, "channels": channels,
            "conversations": len(clients), "senders": min(args.users, args.clients), "history_sample": args.history_sample,
            "ceiling_duration_s": args.ceiling_duration, "set_up_s": round(set_up_s, 2),
            "users_created_via": "composition root (chat4all.entrypoints.cli.build_hub) with the deployment's settings",
        },
        "ceiling": ceiling_report,
        "send": send,
        "delivery": delivery,
        "processes": _with_cost(sampler.report(), accepted),
        "machine_cpu_during_send": machine.result,
        "profiles": profiles,
    }


def _with_cost(processes: dict[str, Any], accepted: int) -> dict[str, Any]:
    """Adds each process's CPU milliseconds per accepted message (over the sending window)."""
    for entry in processes.values():
        if accepted and entry.get("cpu_seconds") is not None:
            entry["cpu_ms_per_accepted_message"] = round(1000 * entry["cpu_seconds"] / accepted, 2)
    return processes


def run_async(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def render(report: dict[str, Any]) -> str:
    config, send, delivery = report["config"], report["send"], report["delivery"]
    latency, a2d = send["acceptance_latency"], delivery["accept_to_delivered"]
    mode = f"{config['mode']} loop, {config['clients']} clients"
    if config["mode"] == "open":
        mode += f", {config['rate_per_s']:g} msg/s scheduled"
    lines = [f"Messages: {mode}, {config['duration_s']:g} s, channels {','.join(config['channels'])}", ""]
    rows = [
        ["accepted", send["accepted"], f"{send['accepted_per_s']} msg/s"],
        ["errors", send["error_count"], ", ".join(f"{code}: {n}" for code, n in send["errors"].items()) or "none"],
        ["acceptance latency", "p50/p95/p99/max ms",
         f"{latency['p50_ms']} / {latency['p95_ms']} / {latency['p99_ms']} / {latency['max_ms']}"],
        ["accept->delivered", "p50/p95/p99/max ms",
         f"{a2d['p50_ms']} / {a2d['p95_ms']} / {a2d['p99_ms']} / {a2d['max_ms']} ({a2d['count']} sampled)"],
        ["statuses (sample)", delivery["sampled"], ", ".join(f"{k}: {v}" for k, v in delivery["statuses"].items())],
        ["drain after sending", f"{delivery.get('drain_s')} s", "all terminal" if delivery["drain_poll"]["drained"]
         else f"NOT drained: {delivery['drain_poll']['not_terminal_at_timeout']} left"],
        ["delivered msg/s", delivery.get("delivered_per_s_during_send"), "during sending"],
        ["backlog", delivery.get("backlog_at_end_of_send"), f"at end of sending (max {delivery.get('backlog_max')}, "
         f"growth {delivery.get('backlog_growth_per_s_second_half')} msg/s over the second half)"],
    ]
    worst = max(send.get("acceptance_latency_by_second") or [], key=lambda entry: entry["p99_ms"] or 0, default=None)
    if worst:
        rows.append(["worst second", f"second {worst['second']}",
                     f"p50 {worst['p50_ms']} / p99 {worst['p99_ms']} / max {worst['max_ms']} ms ({worst['count']} requests)"])
    if send.get("dispatch_lag"):
        rows.append(["scheduler lag", "p99/max ms", f"{send['dispatch_lag']['p99_ms']} / {send['dispatch_lag']['max_ms']}"])
    if report.get("ceiling"):
        c = report["ceiling"]
        rows.append(["ceiling GET /health", f"{c['requests_per_s']} req/s",
                     f"p50 {c['latency']['p50_ms']} ms, p99 {c['latency']['p99_ms']} ms, loadgen CPU "
                     f"{c['generator_cpu_percent_of_one_core']}%"])
    for name, process in report["processes"].items():
        rows.append([f"cpu {name}", f"{process.get('cpu_percent_of_one_core')}%",
                     f"{process.get('cpu_ms_per_accepted_message')} ms CPU per accepted message; "
                     f"rss {process.get('rss_baseline_mib')} -> peak {process.get('rss_peak_mib')} MiB"])
    cpu = report.get("machine_cpu_during_send") or {}
    if cpu:
        shares = ", ".join(f"{name} {value}" for name, value in cpu["cores_by_process"].items())
        rows.append(["machine CPU (cores)", f"{cpu['busy_cores']} of {cpu['cores']}",
                     f"{shares}, other {cpu['other_cores']}"])
    lines.append(table(rows, ["", "value", "detail"]))
    if report.get("profiles"):
        from benchmarks.profiling import render as render_profile

        for name, summary in report["profiles"].items():
            lines += ["", render_profile({**summary, "inclusive_percent": dict(list(summary["inclusive_percent"].items())[:12])},
                                         f"py-spy {name}")]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="benchmarks.messages", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--base-url", required=True)
    cli.add_argument("--env-file", help="the deployment's CHAT4ALL_* settings (to create users); default: environment")
    cli.add_argument("--clients", type=int, default=50)
    cli.add_argument("--users", type=int, default=10, help="sender accounts the clients share (logins cost argon2)")
    cli.add_argument("--mode", choices=("closed", "open"), default="closed")
    cli.add_argument("--rate", type=float, default=200.0, help="open loop: messages per second in total")
    cli.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    cli.add_argument("--channels", default="whatsapp", help="comma-separated; 'all' for every channel")
    cli.add_argument("--ceiling-duration", type=float, default=10.0, help="seconds against GET /health first (0: skip)")
    cli.add_argument("--drain-timeout", type=float, default=300.0)
    cli.add_argument("--history-sample", type=int, default=20000, help="0: every message")
    cli.add_argument("--pid", action="append", default=[], help="NAME=PID of a server process to sample (repeatable); "
                     "default: the process listening on the base URL's port, as 'api'")
    cli.add_argument("--py-spy", metavar="DIR", help="record the server processes with py-spy while sending; "
                     "folded stacks and a summary go to DIR and the JSON")
    cli.add_argument("--json", help="write the full report here")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = run_async(run(args))
    write_json(args.json, report)
    print(render(report))
    if args.json:
        print(f"\nJSON: {Path(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
