"""Shared pieces of the benchmark tools: statistics, sizes, HTTP sessions, env files, tables and JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiohttp


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
