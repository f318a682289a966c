"""The benchmark tools run end to end against real deployments, for a few seconds with tiny sizes.

Only that they run, write their JSON with the expected keys and see no errors is checked: timings
on a shared CI machine mean nothing, so none is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.deploy import Deployment
from benchmarks.shared_servers import REPO

FAST_ARGON2 = {"CHAT4ALL_ARGON2_TIME_COST": "1", "CHAT4ALL_ARGON2_MEMORY_KIB": "8192"}
LATENCY_KEYS = {"count", "p50_ms", "p95_ms", "p99_ms", "max_ms"}


def tool(module: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{module} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def run_messages(deployment: Deployment, workdir: Path, mode: str) -> dict:
    env_file = workdir / f"{deployment.profile}.env"
    env_file.write_text(deployment.env_lines() + "\n")
    out = workdir / f"messages-{deployment.profile}-{mode}.json"
    done = tool(
        "benchmarks.messages", "--base-url", deployment.base_url, "--env-file", str(env_file), "--mode", mode,
        "--clients", "4", "--users", "2", "--rate", "20", "--duration", "2", "--ceiling-duration", "0.5",
        "--drain-timeout", "60", "--json", str(out), *sum((["--pid", f"{k}={v}"] for k, v in deployment.pids().items()), []),
    )
    assert "acceptance latency" in done.stdout
    report = json.loads(out.read_text())
    assert {"config", "ceiling", "send", "delivery", "processes", "machine_cpu_during_send"} <= set(report)
    assert report["send"]["accepted"] > 0 and report["send"]["error_count"] == 0, report["send"]
    assert LATENCY_KEYS <= set(report["send"]["acceptance_latency"])
    assert report["ceiling"]["requests"] > 0 and not report["ceiling"]["errors"]
    delivery = report["delivery"]
    assert delivery["drain_poll"]["drained"], delivery
    assert delivery["statuses"] == {"delivered": report["send"]["accepted"]}
    assert LATENCY_KEYS <= set(delivery["accept_to_delivered"]) and delivery["accept_to_delivered"]["count"] > 0
    assert {"drain_s", "delivered_per_s_during_send", "backlog_at_end_of_send"} <= set(delivery)
    assert "api" in report["processes"]
    if mode == "open":
        assert report["send"]["scheduled"] == 40 and "dispatch_lag" in report["send"]
    return report


def run_files(deployment: Deployment, workdir: Path, size: str) -> dict:
    env_file = workdir / f"{deployment.profile}.env"
    out = workdir / f"files-{deployment.profile}.json"
    tool("benchmarks.files", "--base-url", deployment.base_url, "--env-file", str(env_file), "--size", size,
         "--api-pid", str(deployment.pid("api")), "--json", str(out))
    report = json.loads(out.read_text())
    assert report["error_count"] == 0
    api = report["paths"]["api"]
    assert api["complete"]["ok"] and api["upload"]["mb_per_s"] > 0 and api["upload"]["error_count"] == 0
    assert {"rss_baseline_mib", "rss_peak_growth_mib"} <= set(api["api_process"])
    return report


@pytest.fixture
def workdir(tmp_path) -> Path:
    return tmp_path


def test_embedded_benchmarks_run(workdir):
    with Deployment("embedded", workdir / "deployment", extra_env={**FAST_ARGON2, "CHAT4ALL_CHUNK_SIZE": "1048576"}) as deployment:
        run_messages(deployment, workdir, "closed")
        run_messages(deployment, workdir, "open")
        files = run_files(deployment, workdir, "3MiB")
    assert "skipped" in files["paths"]["presigned"]  # embedded URLs point back at the API


@pytest.mark.services
def test_distributed_benchmarks_run(workdir):
    with Deployment("distributed", workdir / "deployment", extra_env={**FAST_ARGON2, "CHAT4ALL_CHUNK_SIZE": str(5 * 2**20)}) as deployment:
        run_messages(deployment, workdir, "closed")
        files = run_files(deployment, workdir, "11MiB")
    presigned = files["paths"]["presigned"]
    assert presigned["complete"]["ok"] and presigned["upload"]["error_count"] == 0


@pytest.mark.services
def test_worker_load_runs(workdir):
    out = workdir / "worker-load.json"
    tool("benchmarks.worker_load", "--rate", "20", "--duration", "2", "--conversations", "3", "--no-services",
         "--drain-timeout", "60", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["sent"] > 0 and report["finished"] == report["sent"], report
    assert LATENCY_KEYS <= set(report["accept_to_finished"]) and report["accept_to_finished"]["count"] == report["sent"]
    assert report["worker_cpu_ms_per_message_total"] > 0


def test_cli_upload_benchmark_runs(workdir):
    out = workdir / "cli-upload.json"
    done = tool("benchmarks.cli_upload", "--size", "3MiB", "--rounds", "2", "--json", str(out))
    assert "cli / api" in done.stdout
    rounds = json.loads(out.read_text())["rounds"]
    assert len(rounds) == 2 and all(r["api_mb_s"] > 0 and r["cli_mb_s"] > 0 and r["cli_upload_mb_s"] > 0 for r in rounds)


def test_summary_and_targets_from_reports(workdir):
    from benchmarks.run import evaluate, summary_markdown

    results = {
        "closed": {"send": {"accepted_per_s": 1200.0, "error_count": 0}},
        "files": {"config": {"size": "2GiB"}, "paths": {"api": {
            "upload": {"mb_per_s": 120.0}, "complete": {"seconds": 4.0, "ok": True},
            "api_process": {"rss_peak_growth_mib": 50.0}}}},
    }
    verdicts = {t["target"]: t["met"] for t in evaluate(results)}
    assert verdicts["closed loop accepted msg/s"] is True
    assert verdicts["2GiB via API MB/s"] is False
    assert verdicts["complete seconds"] is True
    assert isinstance(summary_markdown({"profile": "embedded", "quick": True, "started_at": "now", "results": {},
                                        "machine": {"nproc": 2, "cpu_model": "x", "memory": "1 GiB", "python": "3.11",
                                                    "git_commit": "abc"}, "targets": []}), str)
