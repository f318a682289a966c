"""An upload through the web chat in Chromium: MB/s, and the browser's CPU time for the SHA-256.

    uv run python -m benchmarks.browser_upload [--size 200MB] [--profile embedded] [--rounds 1] [--json out.json]

One throw-away deployment (benchmarks.deploy) with its default settings (8 MiB chunks), two users,
and one file of --size random bytes on disk. Headless Chromium (CHAT4ALL_TEST_CHROMIUM, else Debian's
`chromium`) opens the page, logs in, starts a conversation and attaches the file, as a person
would. Each round attaches it afresh (a new modification time, so nothing resumes) and waits for
the page's `chat4all:upload-completed` event, which reports:
  seconds       initiate to complete as the page measured it: reading, hashing, sending, the
                server's own check of the SHA-256;
  hash_seconds  time spent inside the SHA-256 (js-sha256) on the page's main thread: synchronous
                code, so the CPU time the browser spent hashing.
The browser's processes (renderer, network service, GPU, browser: the Chromium processes among
this one's descendants) are also read from /proc before and after, for the CPU the whole upload
cost the browser: reading the file, hashing, sending.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.cli_upload import write_random_file
from benchmarks.common import parse_size, table, write_json
from benchmarks.deploy import Deployment
from benchmarks.ports import low_port

MB = 1_000_000
PASSWORD = "bench-password-1"
TICKS = os.sysconf("SC_CLK_TCK")
# Evaluated scripts run outside the page's Content-Security-Policy, as devtools' console does.
LISTEN = """() => { window.benchUpload = new Promise(done => window.addEventListener(
    "chat4all:upload-completed", event => done(event.detail), {once: true})); }"""


def browser_cpu_seconds(root: int) -> dict[str, float]:
    """User + system CPU seconds of the Chromium processes among the descendants of `root` (the
    server and Playwright's driver are descendants too, and left out), read from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    chromium: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, fields = stat.split("(", 1)[1].rsplit(")", 1)[0], stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
        if name.startswith("chrom"):
            chromium.add(int(entry))
    wanted, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - wanted
        wanted |= frontier
    by_kind: dict[str, float] = {}
    for pid in wanted & chromium:
        by_kind[_kind(pid)] = by_kind.get(_kind(pid), 0.0) + times[pid]
    return by_kind


def _kind(pid: int) -> str:
    """Chromium's process kind: its --type (renderer, utility for the network service, gpu-process), else browser."""
    try:
        # Chromium rewrites its children's command lines into one space-separated string.
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        return "gone"
    kinds = [a.split(b"=", 1)[1].decode() for a in arguments if a.startswith(b"--type=")]
    return kinds[0] if kinds else "browser"


def open_chat(browser, base_url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(base_url + "/")
    page.get_by_label("Username").fill("bench")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("New conversation with").fill("peer")
    page.get_by_role("button", name="Start conversation").click()
    page.get_by_role("log").wait_for()
    return page


def upload_once(page, path: Path) -> dict[str, Any]:
    os.utime(path, (time.time(), time.time()))  # another file to the page: a fresh upload, not a resumed one
    page.evaluate(LISTEN)
    cpu_before = browser_cpu_seconds(os.getpid())
    started = time.perf_counter()
    with page.expect_file_chooser() as choosing:
        page.get_by_role("button", name="Attach file").click()
    choosing.value.set_files(path)
    detail = page.evaluate("() => window.benchUpload")
    wall = time.perf_counter() - started
    cpu_after = browser_cpu_seconds(os.getpid())
    by_kind = {kind: cpu_after[kind] - cpu_before.get(kind, 0.0) for kind in cpu_after}
    page.get_by_role("log").locator(".message", has_text=path.name).last.wait_for()
    return {**detail, "wall_seconds": wall, "browser_cpu_seconds": sum(by_kind.values()), "browser_cpu_by_kind": by_kind}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    size = parse_size(args.size)
    chromium = os.environ.get("CHAT4ALL_TEST_CHROMIUM") or "/usr/bin/chromium"
    with Deployment(args.profile, port=low_port(), worker=args.profile == "distributed") as deployment:
        for name in ("bench", "peer"):
            deployment.cli("users", "add", name, "--password", PASSWORD)
        source = deployment.workdir / "holiday.bin"
        checksum = write_random_file(source, size)
        rounds = []
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = open_chat(browser, deployment.base_url)
                for _ in range(args.rounds):
                    result = upload_once(page, source)
                    if result["checksum"] != checksum:
                        raise RuntimeError("the page computed another SHA-256")
                    rounds.append(result)
                browser.close()
        finally:
            source.unlink()
        return {"size_bytes": size, "profile": args.profile, "chromium": chromium, "rounds": rounds,
                "deployment": deployment.describe()}


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--size", default="200MB", help="file size, e.g. 200MB, 1GiB (default 200MB)")
    cli.add_argument("--profile", choices=("embedded", "distributed"), default="embedded")
    cli.add_argument("--rounds", type=int, default=1)
    cli.add_argument("--json", help="write the figures here")
    args = cli.parse_args()
    report = run(args)
    size_mb = report["size_bytes"] / MB
    rows = [
        (index + 1, f"{size_mb / r['seconds']:.1f}", f"{r['seconds']:.2f}", f"{r['hash_seconds']:.2f}",
         f"{size_mb / r['hash_seconds']:.0f}", f"{r['browser_cpu_seconds']:.2f}")
        for index, r in enumerate(report["rounds"])
    ]
    print(f"{size_mb:.0f} MB through the web chat in Chromium, {args.profile}")
    header = ("round", "MB/s", "seconds", "hashing CPU s", "hashing MB/s", "browser CPU s (all)")
    print(table(rows, header=header))
    for index, r in enumerate(report["rounds"]):
        kinds = ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in sorted(r["browser_cpu_by_kind"].items()))
        print(f"round {index + 1}: browser CPU s by process: {kinds}")
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
