"""File benchmark: upload one large generated file in chunks, then complete it (server-side SHA-256 + assembly).

    uv run python -m benchmarks.files --base-url http://127.0.0.1:8000 --env-file deploy.env --size 2GiB \\
        [--concurrency 4] [--paths api,presigned] [--api-pid PID] [--json out.json]

The file is never held in memory: chunk i is a rotation of one chunk-sized block drawn from a
seeded PRNG (--seed), so every chunk differs, the content is reproducible and making a chunk is a
memory copy. Its SHA-256 is computed in a pass before the timed upload.

Paths:
  api        every chunk through `PATCH /v1/files/upload`, --concurrency chunks in flight;
  presigned  every chunk PUT to the `upload_url` / `next_upload_url` the API hands out, when those
             point at the object store rather than at the API (distributed profile with S3). The API
             gives out one URL at a time (the next missing chunk), so this path is sequential.
Each path ends with a timed `POST /v1/files/complete`.

The API process's VmRSS (/proc/<pid>/status) is sampled every 100 ms from a thread for the whole
run; baseline and peak growth are reported per phase. Without --api-pid the process listening on the
base URL's port is used. The user comes from the composition root with the deployment's settings
(--env-file, or the environment), as in benchmarks.messages.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import latency_summary, load_env_file, make_session, parse_size, table, write_json
from benchmarks.message_load import create_users, login
from benchmarks.messages import run_async
from benchmarks.processes import ProcessSampler, find_listening_pid

MB = 1_000_000


class GeneratedFile:
    """size bytes made of chunk_size pieces; piece i is `block` rotated by a per-chunk offset."""

    def __init__(self, size: int, chunk_size: int, seed: int):
        self.size = size
        self.chunk_size = chunk_size
        self.block = random.Random(seed).randbytes(chunk_size)
        self.total_chunks = -(-size // chunk_size)

    def chunk(self, index: int) -> bytes:
        length = min(self.chunk_size, self.size - index * self.chunk_size)
        offset = (index * 1_000_003) % self.chunk_size
        rotated = self.block[offset:] + self.block[:offset] if offset else self.block
        return rotated[:length] if length < self.chunk_size else rotated

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for index in range(self.total_chunks):
            digest.update(self.chunk(index))
        return digest.hexdigest()


async def initiate(session: aiohttp.ClientSession, base: str, auth: dict[str, str], size: int, name: str) -> dict:
    body = {"filename": name, "file_size": size, "content_type": "application/octet-stream"}
    async with session.post(f"{base}/v1/files/initiate", json=body, headers=auth) as response:
        if response.status != 201:
            raise RuntimeError(f"initiate failed: {response.status} {await response.text()}")
        return await response.json()


async def complete(session: aiohttp.ClientSession, base: str, auth: dict[str, str], file_id: str,
                   checksum: str) -> dict[str, Any]:
    started = time.perf_counter()
    async with session.post(f"{base}/v1/files/complete", json={"file_id": file_id, "checksum": checksum},
                            headers=auth) as response:
        text = await response.text()
        status = response.status
    elapsed = time.perf_counter() - started
    return {"status": status, "seconds": round(elapsed, 3), "ok": status == 200, "detail": None if status == 200 else text[:300]}


def _rate(size: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 3), "mb_per_s": round(size / MB / seconds, 1) if seconds else None,
            "mib_per_s": round(size / 2**20 / seconds, 1) if seconds else None}


async def through_api(session: aiohttp.ClientSession, base: str, auth: dict[str, str], file: GeneratedFile,
                      info: dict, concurrency: int) -> dict[str, Any]:
    indices = iter(range(file.total_chunks))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    headers = {**auth, "Content-Type": "application/octet-stream"}

    async def worker() -> None:
        for index in indices:
            data = file.chunk(index)
            url = f"{base}/v1/files/upload?file_id={info['file_id']}&chunk_id={index}"
            for _attempt in range(3):
                started = time.perf_counter()
                try:
                    async with session.patch(url, data=data, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (TimeoutError, aiohttp.ClientError) as error:
                    status = type(error).__name__
                latencies.append(time.perf_counter() - started)
                if status == 200:
                    break
                errors[str(status)] = errors.get(str(status), 0) + 1
            else:
                raise RuntimeError(f"chunk {index} failed three times ({errors})")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, **_rate(file.size, elapsed), "chunk_latency": latency_summary(latencies),
            "errors": errors, "error_count": sum(errors.values())}


async def through_presigned(session: aiohttp.ClientSession, base: str, auth: dict[str, str], file: GeneratedFile,
                            info: dict) -> dict[str, Any]:
    """PUT each chunk to the URL the API handed out, then ask the API for the next one (one at a time)."""
    url: str | None = info["upload_url"]
    latencies: list[float] = []
    url_latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    started = time.perf_counter()
    index = 0
    while url:
        data = file.chunk(index)
        began = time.perf_counter()
        async with session.put(url, data=data, headers={"Content-Type": "application/octet-stream"}) as response:
            await response.read()
            if response.status != 200:
                errors[str(response.status)] = errors.get(str(response.status), 0) + 1
                raise RuntimeError(f"presigned PUT of chunk {index} failed: {response.status} {await response.text()}")
        latencies.append(time.perf_counter() - began)
        sent += 1
        began = time.perf_counter()
        async with session.get(f"{base}/v1/files/{info['file_id']}", headers=auth) as response:
            status = await response.json()
        url_latencies.append(time.perf_counter() - began)
        url = status.get("next_upload_url")
        missing = status.get("missing_chunks") or []
        index = missing[0] if missing else file.total_chunks
        if sent > file.total_chunks * 2:
            raise RuntimeError("the API keeps handing out upload URLs")
    elapsed = time.perf_counter() - started
    return {"concurrency": 1, **_rate(file.size, elapsed), "chunk_latency": latency_summary(latencies),
            "next_url_latency": latency_summary(url_latencies), "errors": errors, "error_count": sum(errors.values())}


def _is_direct(url: str, base: str) -> bool:
    return bool(url) and not url.startswith(base) and "/v1/files/upload" not in url


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = args.base_url.rstrip("/")
    env = {**os.environ, **(load_env_file(args.env_file) if args.env_file else {})}
    size = parse_size(args.size)
    paths = [path for path in args.paths.split(",") if path]
    api_pid = args.api_pid
    if not api_pid and base.count(":") == 2:
        api_pid = find_listening_pid(int(base.rsplit(":", 1)[1].split("/")[0]))
    report: dict[str, Any] = {
        "tool": "files",
        "base_url": base,
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": {"size_bytes": size, "size": args.size, "concurrency": args.concurrency, "seed": args.seed,
                   "paths": paths, "api_pid": api_pid,
                   "users_created_via": "composition root (chat4all.entrypoints.cli.build_hub) with the deployment's settings"},
        "paths": {},
    }
    async with make_session(max(args.concurrency, 2), timeout_s=600) as session:
        (_, username), = await create_users(env, 1, f"files{uuid.uuid4().hex[:6]}_")
        auth = {"Authorization": f"Bearer {await login(session, base, username)}"}
        for path in paths:
            info = await initiate(session, base, auth, size, f"bench-{path}.bin")
            file = GeneratedFile(size, info["chunk_size"], args.seed)
            checksum_started = time.perf_counter()
            checksum = await asyncio.to_thread(file.sha256)
            entry: dict[str, Any] = {
                "file_id": info["file_id"], "chunk_size": info["chunk_size"], "total_chunks": info["total_chunks"],
                "client_sha256_s": round(time.perf_counter() - checksum_started, 2),
            }
            if path == "presigned" and not _is_direct(info["upload_url"], base):
                entry["skipped"] = "upload URLs point back to the API (no direct object-store URLs in this profile)"
                report["paths"][path] = entry
                continue
            sampler = ProcessSampler({"api": api_pid} if api_pid else {}, interval=0.1).start()
            recorder = None
            if args.py_spy and api_pid:
                from benchmarks.profiling import Recorder

                recorder = Recorder(Path(args.py_spy) / path, {"api": api_pid}, duration=args.py_spy_seconds)
                recorder.start()
            sampler.mark("upload")
            if path == "api":
                entry["upload"] = await through_api(session, base, auth, file, info, args.concurrency)
            elif path == "presigned":
                entry["upload"] = await through_presigned(session, base, auth, file, info)
            else:
                raise SystemExit(f"unknown path {path!r} (api, presigned)")
            sampler.mark("complete")
            entry["complete"] = await complete(session, base, auth, info["file_id"], checksum)
            sampler.stop()
            entry["api_process"] = sampler.report().get("api")
            if recorder:
                entry["profile"] = await asyncio.to_thread(recorder.stop)
            end_to_end = entry["upload"]["seconds"] + entry["complete"]["seconds"]
            entry["upload_and_complete"] = _rate(size, end_to_end)
            report["paths"][path] = entry
    report["error_count"] = sum(
        entry.get("upload", {}).get("error_count", 0) + (0 if entry.get("complete", {}).get("ok", True) else 1)
        for entry in report["paths"].values()
    )
    return report


def render(report: dict[str, Any]) -> str:
    config = report["config"]
    lines = [f"Files: {config['size']} ({config['size_bytes']:,} bytes), {config['concurrency']} chunks in flight "
             f"on the API path", ""]
    rows = []
    for path, entry in report["paths"].items():
        if "skipped" in entry:
            rows.append([path, "skipped", "-", "-", "-", entry["skipped"]])
            continue
        upload, done, process = entry["upload"], entry["complete"], entry.get("api_process") or {}
        phases = process.get("rss_peak_growth_mib_by_phase", {})
        rows.append([
            path,
            f"{upload['mb_per_s']} MB/s",
            f"{done['seconds']} s" + ("" if done["ok"] else f" FAILED {done['status']}"),
            f"{entry['upload_and_complete']['mb_per_s']} MB/s",
            f"{process.get('rss_baseline_mib')} MiB, +{phases.get('upload')} / +{phases.get('complete')} MiB",
            f"chunks {entry['total_chunks']} x {entry['chunk_size'] // 2**20} MiB, p50 "
            f"{upload['chunk_latency']['p50_ms']} ms, errors {upload['error_count']}, api cpu "
            f"{process.get('cpu_percent_of_one_core')}%",
        ])
    lines.append(table(rows, ["path", "upload", "complete", "upload+complete", "API RSS base, peak growth upload/complete",
                              "detail"]))
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="benchmarks.files", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--base-url", required=True)
    cli.add_argument("--env-file", help="the deployment's CHAT4ALL_* settings (to create the user); default: environment")
    cli.add_argument("--size", default="2GiB", help="e.g. 2GiB, 512MiB, 100MB")
    cli.add_argument("--concurrency", type=int, default=4, help="chunks in flight on the API path")
    cli.add_argument("--paths", default="api,presigned", help="api, presigned or both (comma-separated)")
    cli.add_argument("--seed", type=int, default=2024)
    cli.add_argument("--api-pid", type=int, help="the API process to sample (default: the one on the port)")
    cli.add_argument("--py-spy", metavar="DIR", help="record the API with py-spy during each path")
    cli.add_argument("--py-spy-seconds", type=float, default=20.0)
    cli.add_argument("--json", help="write the full report here")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = run_async(run(args))
    write_json(args.json, report)
    print(render(report))
    if args.json:
        print(f"\nJSON: {Path(args.json)}")
    return 0 if report["error_count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
