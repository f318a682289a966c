"""Shared pieces of the benchmark tools: statistics, process sampling, sizes, tables, env files."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ---------------------------------------------------------------------------------------------
# statistics


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def latency_summary(values_s: Iterable[float]) -> dict[str, Any]:
    """count, mean and p50/p90/p95/p99/p99.9/max in milliseconds."""
    ordered = sorted(values_s)
    if not ordered:
        return {"count": 0, "mean_ms": None, "p50_ms": None, "p90_ms": None, "p95_ms": None,
                "p99_ms": None, "p999_ms": None, "max_ms": None}

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "count": len(ordered),
        "mean_ms": ms(sum(ordered) / len(ordered)),
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p95_ms": ms(percentile(ordered, 0.95)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "p999_ms": ms(percentile(ordered, 0.999)),
        "max_ms": ms(ordered[-1]),
    }


# ---------------------------------------------------------------------------------------------
# sizes

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "mi": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3, "t": 1000**4, "tb": 1000**4,
          "tib": 1024**4, "ti": 1024**4}


def parse_size(text: str) -> int:
    """'2GiB', '512MiB', '100MB', '1048576' -> bytes (KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000)."""
    match = _SIZE.match(text)
    if not match or (match.group(2) or "").lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (try 2GiB, 512MiB, 100MB)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


# ---------------------------------------------------------------------------------------------
# processes


def read_proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def cpu_seconds(pid: int) -> float:
    """user + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def find_listening_pid(port: int) -> int | None:
    """The pid of the process holding a TCP socket listening on `port` (from /proc; same user or root)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None


class ProcessSampler:
    """Samples RSS (VmRSS) of some processes every `interval` seconds on a thread of its own (so a busy
    event loop does not stretch the interval), and their CPU use between start() and stop()."""

    def __init__(self, pids: dict[str, int], interval: float = 0.1):
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.interval = interval
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in self.pids}
        self.marks: dict[str, float] = {}
        self._cpu_start: dict[str, float] = {}
        self._cpu_end: dict[str, float] = {}
        self._hwm_end: dict[str, int] = {}
        self._started = 0.0
        self._stopped = 0.0
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        now = time.monotonic()
        for name, pid in self.pids.items():
            try:
                self.samples[name].append((now, read_proc_status(pid)["VmRSS"]))
            except (OSError, KeyError):
                pass

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def _cpu(self) -> dict[str, float]:
        result = {}
        for name, pid in self.pids.items():
            try:
                result[name] = cpu_seconds(pid)
            except OSError:
                pass
        return result

    def start(self) -> ProcessSampler:
        self._cpu_start = self._cpu()
        self._started = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def mark(self, label: str) -> None:
        """Remembers a moment (e.g. 'complete'), to split the peak by phase in report()."""
        self.marks[label] = time.monotonic()

    def stop(self) -> None:
        self._halt.set()
        if self._thread:
            self._thread.join()
        self._sample()
        self._cpu_end = self._cpu()
        for name, pid in self.pids.items():
            try:
                self._hwm_end[name] = read_proc_status(pid)["VmHWM"]
            except (OSError, KeyError):
                pass
        self._stopped = time.monotonic()

    def baseline_rss(self, name: str) -> int | None:
        samples = self.samples.get(name) or []
        return samples[0][1] if samples else None

    def report(self) -> dict[str, Any]:
        elapsed = max(self._stopped - self._started, 1e-9)
        out: dict[str, Any] = {}
        bounds = sorted(self.marks.items(), key=lambda item: item[1])
        for name, pid in self.pids.items():
            samples = self.samples.get(name) or []
            rss = [value for _, value in samples]
            entry: dict[str, Any] = {"pid": pid, "samples": len(rss), "interval_s": self.interval}
            if rss:
                entry.update(
                    rss_baseline_mib=round(rss[0] / 2**20, 1),
                    rss_peak_mib=round(max(rss) / 2**20, 1),
                    rss_peak_growth_mib=round((max(rss) - rss[0]) / 2**20, 1),
                    rss_end_mib=round(rss[-1] / 2**20, 1),
                )
                phases = [("start", self._started), *bounds, ("end", self._stopped + 1)]
                for (label, begin), (_, finish) in zip(phases, phases[1:], strict=False):
                    window = [value for moment, value in samples if begin <= moment < finish]
                    if window:
                        entry.setdefault("rss_peak_growth_mib_by_phase", {})[label] = round(
                            (max(window) - rss[0]) / 2**20, 1)
            if name in self._hwm_end:
                entry["vm_hwm_mib"] = round(self._hwm_end[name] / 2**20, 1)
            if name in self._cpu_start and name in self._cpu_end:
                used = self._cpu_end[name] - self._cpu_start[name]
                entry.update(cpu_seconds=round(used, 2), cpu_percent_of_one_core=round(100 * used / elapsed, 1))
            out[name] = entry
        return out


def _machine_ticks() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def _kind(pid: int, named: dict[int, str]) -> str:
    if pid in named:
        return named[pid]
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if "postgres" in command:
        return "postgres"
    if "kafka" in command:
        return "kafka"
    if "versitygw" in command:
        return "s3"
    return "other"


class MachineCpu:
    """Where the whole machine's CPU went between start() and stop(): our processes, the servers, the rest.

    Figures are in cores (1.0 = one core busy for the whole window), so "other" shows how much CPU
    processes unrelated to the benchmark took from it.
    """

    def __init__(self, named: dict[str, int]):
        self.named = {pid: name for name, pid in named.items() if pid}
        self._start: dict[int, float] = {}
        self._machine_start = (0.0, 0.0)
        self._began = 0.0
        self.result: dict[str, Any] = {}

    def _snapshot(self) -> dict[int, float]:
        out = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    out[int(entry.name)] = cpu_seconds(int(entry.name))
                except (OSError, ValueError, IndexError):
                    pass
        return out

    def start(self) -> None:
        self._start = self._snapshot()
        self._machine_start = _machine_ticks()
        self._began = time.monotonic()

    def stop(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self._began, 1e-9)
        end = self._snapshot()
        busy_end, total_end = _machine_ticks()
        by_kind: dict[str, float] = {}
        for pid, used in end.items():
            kind = _kind(pid, self.named)
            if kind != "other":
                by_kind[kind] = by_kind.get(kind, 0.0) + used - self._start.get(pid, 0.0)
        busy = busy_end - self._machine_start[0]
        cores = (total_end - self._machine_start[1]) / elapsed
        self.result = {
            "window_s": round(elapsed, 2),
            "cores": round(cores),
            "busy_cores": round(busy / elapsed, 2),
            "cores_by_process": {kind: round(value / elapsed, 2) for kind, value in sorted(by_kind.items())},
            "other_cores": round(max(0.0, busy - sum(by_kind.values())) / elapsed, 2),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        }
        return self.result


def parse_pids(values: Sequence[str]) -> dict[str, int]:
    """['api=123', 'worker=456'] -> {'api': 123, 'worker': 456}."""
    pids = {}
    for value in values:
        name, _, pid = value.partition("=")
        if not pid.isdigit():
            raise ValueError(f"expected NAME=PID, got {value!r}")
        pids[name] = int(pid)
    return pids


# ---------------------------------------------------------------------------------------------
# HTTP


def make_session(connections: int, timeout_s: float = 60.0) -> aiohttp.ClientSession:
    """One session for the whole run: a TCP connector sized to the number of clients, keep-alive on."""
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=connections, keepalive_timeout=120, ttl_dns_cache=None, force_close=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        json_serialize=json.dumps,
        skip_auto_headers=("User-Agent",),
    )


def load_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines (as in deploy/distributed.env); comments and blank lines are ignored."""
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if "=" in line:
            key, _, value = line.partition("=")
            env[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return env


# ---------------------------------------------------------------------------------------------
# output


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """A plain text table, columns padded to their widest cell."""
    cells = [[_cell(value) for value in row] for row in ([header] if header else []) + list(rows)]
    widths = [max(len(row[index]) for row in cells if index < len(row)) for index in range(max(map(len, cells)))]
    lines = []
    for number, row in enumerate(cells):
        lines.append("  ".join(value.ljust(widths[index]) for index, value in enumerate(row)).rstrip())
        if header and number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(path: str | Path | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
