"""One command per profile: start a throw-away deployment, run every benchmark, write JSON and a summary, stop.

    uv run python -m benchmarks.run --profile distributed          # the full run (~10 minutes)
    uv run python -m benchmarks.run --profile embedded
    uv run python -m benchmarks.run --profile embedded --quick     # seconds-long smoke run

distributed: runs `bash scripts/services.sh up` first (PostgreSQL, Kafka, S3 on loopback), then a
fresh database, bucket and consumer group; `chat4all migrate`, `chat4all serve`, `chat4all worker`.
embedded: `chat4all serve` on a fresh data directory.

Phases: messages closed loop (--clients, --duration), messages open loop (--rate), messages open
loop at --sustained-rate (is delivery keeping up?), file upload of --size through the API and through
presigned URLs. Results go to --out (default benchmarks/results/<profile>-<time>/): one JSON per
phase, summary.json (machine, settings, figures, targets) and summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import table
from benchmarks.deploy import Deployment
from benchmarks.shared_servers import REPO, postgres_settings, services_up

TARGETS_NOTE = "targets are the distributed profile's; embedded figures are reported against them for comparison"


def machine() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": commit,
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }


def run_tool(module: str, args: list[str], log: Path) -> int:
    """Runs `python -m <module> ...`, echoing its output and keeping a copy in `log`."""
    command = [sys.executable, "-m", module, *args]
    print(f"\n$ python -m {module} {' '.join(args)}", flush=True)
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            out.write(line)
        return process.wait()


def load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def check(name: str, measured: Any, ok: bool | None, target: str) -> dict[str, Any]:
    return {"target": name, "goal": target, "measured": measured, "met": ok}


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against this run's figures (None: not measured)."""
    out = []
    closed, open_, sustained, files = (results.get(k) for k in ("closed", "open", "sustained", "files"))
    if closed:
        rate, errors = closed["send"]["accepted_per_s"], closed["send"]["error_count"]
        out.append(check("closed loop accepted msg/s", rate, rate >= 1000, ">= 1000"))
        out.append(check("closed loop errors", errors, errors == 0, "0"))
    if sustained:
        send, delivery = sustained["send"], sustained["delivery"]
        target = sustained["config"]["rate_per_s"]
        delivered = delivery.get("delivered_per_s_during_send")
        growth = delivery.get("backlog_growth_per_s_second_half")
        drain = delivery.get("drain_s")
        out.append(check(f"sustained {target:g} msg/s: accepted msg/s", send["accepted_per_s"],
                         send["accepted_per_s"] >= 0.98 * target and send["error_count"] == 0, f">= {0.98 * target:g}, no errors"))
        out.append(check(f"sustained {target:g} msg/s: delivered msg/s while sending", delivered,
                         delivered is not None and delivered >= 0.95 * target, f">= {0.95 * target:g}"))
        out.append(check("sustained: backlog not growing (second half, msg/s per s) and drain after sending",
                         f"{growth} / {drain} s", growth is not None and drain is not None and growth <= 5 and drain <= 5,
                         "growth <= 5, drain <= 5 s"))
    if open_:
        latency, a2d = open_["send"]["acceptance_latency"], open_["delivery"]["accept_to_delivered"]
        rate = open_["config"]["rate_per_s"]
        out.append(check(f"open loop {rate:g} msg/s: acceptance p95 ms", latency["p95_ms"],
                         latency["p95_ms"] is not None and latency["p95_ms"] <= 15, "<= 15"))
        out.append(check(f"open loop {rate:g} msg/s: acceptance p99 ms", latency["p99_ms"],
                         latency["p99_ms"] is not None and latency["p99_ms"] <= 30, "<= 30"))
        out.append(check(f"open loop {rate:g} msg/s: accept->delivered p95 ms", a2d["p95_ms"],
                         a2d["p95_ms"] is not None and a2d["p95_ms"] <= 150, "<= 150"))
    api = (files or {}).get("paths", {}).get("api")
    if api and "upload" in api:
        mbps, done = api["upload"]["mb_per_s"], api["complete"]["seconds"]
        growth = (api.get("api_process") or {}).get("rss_peak_growth_mib")
        out.append(check(f"{files['config']['size']} via API MB/s", mbps, mbps >= 150, ">= 150"))
        out.append(check("complete seconds", done, api["complete"]["ok"] and done <= 10, "<= 10"))
        out.append(check("API peak RSS growth MB", None if growth is None else round(growth * 1.048576, 1),
                         growth is not None and growth * 1.048576 <= 100, "<= 100"))
    return out


def summary_markdown(summary: dict[str, Any]) -> str:
    results = summary["results"]
    m = summary["machine"]
    lines = [
        f"# Chat4All benchmarks: {summary['profile']} profile{' (quick)' if summary['quick'] else ''}",
        "",
        f"{summary['started_at']}; {m['nproc']} cores ({m['cpu_model']}), {m['memory']}, Python {m['python']}, "
        f"commit {m['git_commit']}; everything on one machine.",
        "",
    ]
    if summary.get("postgres_settings"):
        lines.append("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in summary["postgres_settings"].items()))
        lines.append("")
    rows = []
    for key in ("closed", "open", "sustained"):
        data = results.get(key)
        if not data:
            continue
        send, delivery, config = data["send"], data["delivery"], data["config"]
        lat, a2d = send["acceptance_latency"], delivery["accept_to_delivered"]
        what = f"{key}: {config['clients']} clients" + (f" @ {config['rate_per_s']:g}/s" if config["rate_per_s"] else "")
        cpu = data.get("machine_cpu_during_send") or {}
        rows.append([what, f"{config['duration_s']:g}", send["accepted_per_s"], send["error_count"],
                     f"{lat['p50_ms']} / {lat['p95_ms']} / {lat['p99_ms']} / {lat['max_ms']}",
                     f"{a2d['p50_ms']} / {a2d['p95_ms']} / {a2d['p99_ms']}",
                     delivery.get("delivered_per_s_during_send"), delivery.get("drain_s"),
                     (data.get("ceiling") or {}).get("requests_per_s"), cpu.get("other_cores")])
    if rows:
        lines += ["## Messages", "", "```", table(rows, [
            "run", "s", "accepted/s", "errors", "accept ms p50/p95/p99/max", "accept->delivered ms p50/p95/p99",
            "delivered/s", "drain s", "ceiling req/s", "other CPU"]), "```", ""]
    files = results.get("files")
    if files:
        rows = []
        for path, entry in files["paths"].items():
            if "skipped" in entry:
                rows.append([path, "-", "-", "-", "-", "skipped: " + entry["skipped"]])
                continue
            process = entry.get("api_process") or {}
            rows.append([path, entry["upload"]["mb_per_s"], entry["complete"]["seconds"],
                         process.get("rss_baseline_mib"), process.get("rss_peak_growth_mib"),
                         f"{entry['total_chunks']} chunks of {entry['chunk_size'] / 2**20:g} MiB, "
                         f"{entry['upload']['concurrency']} in flight"])
        lines += [f"## Files ({files['config']['size']})", "", "```",
                  table(rows, ["path", "upload MB/s", "complete s", "API RSS baseline MiB", "peak growth MiB", ""]),
                  "```", ""]
    if summary["targets"]:
        lines += [f"## Targets ({TARGETS_NOTE})", "", "```",
                  table([[t["target"], t["goal"], t["measured"], {True: "met", False: "MISSED", None: "-"}[t["met"]]]
                         for t in summary["targets"]], ["target", "goal", "measured", ""]), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--profile", choices=("embedded", "distributed"), required=True)
    cli.add_argument("--quick", action="store_true", help="seconds-long smoke run with tiny sizes")
    cli.add_argument("--clients", type=int)
    cli.add_argument("--duration", type=float, help="seconds of sending per message phase (default 60)")
    cli.add_argument("--rate", type=float, default=200.0, help="open loop rate (msg/s)")
    cli.add_argument("--sustained-rate", type=float, help="second open loop rate, 0 to skip (default 500)")
    cli.add_argument("--size", help="file size (default 2GiB)")
    cli.add_argument("--phases", default="closed,open,sustained,files")
    cli.add_argument("--channels", default="whatsapp")
    cli.add_argument("--py-spy", action="store_true", help="also record the API (and worker) with py-spy")
    cli.add_argument("--out", help="result directory (default benchmarks/results/<profile>-<time>)")
    cli.add_argument("--no-services", action="store_true", help="distributed: do not run scripts/services.sh up")
    cli.add_argument("--set", action="append", default=[], metavar="CHAT4ALL_NAME=VALUE",
                     help="a setting for the deployment's processes (repeatable), e.g. CHAT4ALL_S3_COPY_AHEAD=false")
    args = cli.parse_args(argv)

    quick = args.quick
    clients = args.clients or (8 if quick else 50)
    duration = args.duration or (3.0 if quick else 60.0)
    sustained_rate = args.sustained_rate if args.sustained_rate is not None else (50.0 if quick else 500.0)
    rate = args.rate if not quick or args.rate != 200.0 else 50.0
    size = args.size or ("40MiB" if quick else "2GiB")
    phases = [phase for phase in args.phases.split(",") if phase]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or REPO / "benchmarks" / "results" / f"{args.profile}-{stamp}{'-quick' if quick else ''}")
    out.mkdir(parents=True, exist_ok=True)

    summary: dict[str, Any] = {
        "profile": args.profile, "quick": quick, "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["uv run python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(), "results": {},
    }
    if args.profile == "distributed":
        if not args.no_services:
            services_up()
        summary["postgres_settings"] = postgres_settings()
    extra = {"CHAT4ALL_CHUNK_SIZE": str(5 * 2**20)} if quick and args.profile == "distributed" else {}
    if quick and args.profile == "embedded":
        extra = {"CHAT4ALL_CHUNK_SIZE": str(2**20)}
    for setting in args.set:
        name, separator, value = setting.partition("=")
        if not separator or not name.startswith("CHAT4ALL_"):
            cli.error(f"--set wants CHAT4ALL_NAME=VALUE, got {setting!r}")
        extra[name] = value
    summary["settings"] = extra
    deployment = Deployment(args.profile, out / "deployment", extra_env=extra)
    failures = []
    started = time.monotonic()
    try:
        deployment.start()
        summary["deployment"] = deployment.describe()
        env_file = out / "deployment.env"
        env_file.write_text(deployment.env_lines() + "\n")
        pids = [f"{name}={pid}" for name, pid in deployment.pids().items()]
        common = ["--base-url", deployment.base_url, "--env-file", str(env_file), *sum((["--pid", p] for p in pids), [])]
        message_runs = {
            "closed": ["--mode", "closed"],
            "open": ["--mode", "open", "--rate", f"{rate:g}"],
            "sustained": ["--mode", "open", "--rate", f"{sustained_rate:g}"] if sustained_rate else None,
        }
        for phase in ("closed", "open", "sustained"):
            if phase not in phases or message_runs[phase] is None:
                continue
            extra_args = ["--ceiling-duration", "1" if quick else "10", "--history-sample", "2000" if quick else "20000"]
            if args.py_spy:
                extra_args += ["--py-spy", str(out / "profiles" / phase)]
            code = run_tool("benchmarks.messages", [
                *common, *message_runs[phase], "--clients", str(clients), "--duration", f"{duration:g}",
                "--channels", args.channels, *extra_args, "--json", str(out / f"messages-{phase}.json"),
            ], out / f"messages-{phase}.log")
            if code:
                failures.append(f"messages {phase} exited {code}")
            summary["results"][phase] = load(out / f"messages-{phase}.json")
        if "files" in phases:
            file_args = ["--base-url", deployment.base_url, "--env-file", str(env_file), "--size", size,
                         "--api-pid", str(deployment.pid("api")), "--json", str(out / "files.json")]
            if args.py_spy:
                file_args += ["--py-spy", str(out / "profiles" / "files")]
            code = run_tool("benchmarks.files", file_args, out / "files.log")
            if code:
                failures.append(f"files exited {code}")
            summary["results"]["files"] = load(out / "files.json")
    except Exception as error:
        failures.append(f"{type(error).__name__}: {error}")
        raise
    finally:
        deployment.stop()
        summary["elapsed_s"] = round(time.monotonic() - started, 1)
        summary["failures"] = failures
        summary["targets"] = evaluate(summary["results"])
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (out / "summary.md").write_text(summary_markdown(summary))
        print("\n" + summary_markdown(summary))
        print(f"results: {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
