"""py-spy sampling of server processes during a benchmark phase, and a summary of where the time went.

    uv run python -m benchmarks.profiling summary profile.folded      # top functions of a recorded profile

The recorder runs `py-spy record --format raw` (folded stacks) through `uvx py-spy` (or a `py-spy`
on PATH); the summary counts samples by package (the leaf frame's top-level module) and the
inclusive share of the hub's own functions and of the libraries' entry points.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Leaf frames where a thread waits rather than works (py-spy reports some waits as active).
IDLE_LEAVES = ("Condition.wait", "_worker (concurrent/futures/thread.py", "select (selectors.py", "Event.wait")


def py_spy_command() -> list[str] | None:
    if shutil.which("py-spy"):
        return ["py-spy"]
    if shutil.which("uvx"):
        return ["uvx", "py-spy"]
    return None


class Recorder:
    """Starts one `py-spy record` per process; stop() waits for them (they end after `duration`)."""

    def __init__(self, out_dir: Path, pids: dict[str, int], duration: float, rate: int = 100):
        self.out_dir = Path(out_dir)
        self.pids = pids
        self.duration = max(1, int(duration))
        self.rate = rate
        self.running: dict[str, subprocess.Popen] = {}
        self.files: dict[str, Path] = {}

    def start(self) -> None:
        command = py_spy_command()
        if command is None:
            print("py-spy not found (install uv's uvx or py-spy): not profiling", file=sys.stderr)
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            path = self.out_dir / f"{name}.folded"
            self.files[name] = path
            self.running[name] = subprocess.Popen(
                [*command, "record", "--pid", str(pid), "--duration", str(self.duration), "--rate", str(self.rate),
                 "--nonblocking", "--format", "raw", "-o", str(path)],
                stdout=subprocess.DEVNULL, stderr=(self.out_dir / f"{name}.py-spy.log").open("w"),
            )

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        out = {}
        for name, process in self.running.items():
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait()
            path = self.files[name]
            if path.exists() and path.stat().st_size:
                out[name] = {"folded": str(path), **summarize(path)}
        return out


def _package(frame: str) -> str:
    """'Function (sqlalchemy/orm/session.py:123)' -> 'sqlalchemy'."""
    if frame.startswith("Runner.run (asyncio/runners.py"):
        return "event loop (C code: uvloop, httptools)"
    if " (" not in frame:
        return frame
    location = frame.rsplit(" (", 1)[1]
    if location.startswith("<"):
        return "python (frozen)"
    head = location.split("/", 1)[0]
    if head.endswith(".py"):
        return "python stdlib" if "/" not in location else head
    return head


def _function(frame: str) -> str:
    """'Function (pkg/mod.py:123)' -> 'Function (pkg/mod.py)': line numbers dropped."""
    if " (" not in frame:
        return frame
    name, location = frame.rsplit(" (", 1)
    return f"{name} ({location.rsplit(':', 1)[0]})"


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    stacks: list[tuple[list[str], int]] = []
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    total = sum(count for _, count in stacks)
    active = [(frames, count) for frames, count in stacks if not frames[-1].startswith(IDLE_LEAVES)]
    busy = sum(count for _, count in active) or 1
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in active:
        by_package[_package(frames[-1])] += count
        for function in {_function(frame) for frame in frames}:
            inclusive[function] += count
    interesting = [
        (function, count) for function, count in inclusive.most_common()
        if "chat4all/" in function or any(lib in function for lib in (
            "sqlalchemy/", "psycopg/", "litestar/", "msgspec", "uvicorn/", "aiokafka/", "argon2", "botocore/",
            "hashlib", "logging/", "faust/", "aiosqlite/"))
    ]
    def pct(count: int) -> float:
        return round(100 * count / busy, 1)
    return {
        "samples": total,
        "active_samples": busy,
        "self_by_package_percent": {name: pct(count) for name, count in by_package.most_common(15)},
        "inclusive_percent": {name: pct(count) for name, count in interesting[:top]},
    }


def render(summary: dict[str, Any], title: str = "") -> str:
    lines = [f"{title}: {summary['active_samples']} active samples of {summary['samples']}"]
    lines.append("  self time by package: " + ", ".join(
        f"{name} {value}%" for name, value in summary["self_by_package_percent"].items()))
    lines.append("  inclusive:")
    lines += [f"    {value:5.1f}%  {name}" for name, value in summary["inclusive_percent"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "summary":
        print(__doc__)
        return 2
    for path in args[1:]:
        print(render(summarize(Path(path), top=40), path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
