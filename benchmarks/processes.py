"""What the benchmark tools measure of processes: CPU and memory from /proc, per process and for the
whole machine, sampled while a benchmark runs."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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
