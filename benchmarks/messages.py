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
import os
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import latency_summary, load_env_file, make_session, table, write_json
from benchmarks.message_delivery import delivery_report, fetch_histories, wait_drained
from benchmarks.message_load import by_second, ceiling, closed_loop, open_loop, set_up_clients
from benchmarks.processes import MachineCpu, ProcessSampler, find_listening_pid, parse_pids


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
