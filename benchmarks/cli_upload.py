"""`chat4all upload` against the API's own upload figure, measured in the same run.

    uv run python -m benchmarks.cli_upload [--size 2GiB] [--profile embedded] [--parallel 4] \\
        [--rounds 1] [--json out.json]

One throw-away deployment (benchmarks.deploy), one user, one file of --size random bytes on disk
(page-cached after it is written). Each round times, initiate to complete, back to back:
  api  the chunks PATCHed straight with httpx, --parallel in flight, each read from the file by its
       sending thread, then `complete` with the SHA-256 computed beforehand (untimed): what the API
       takes in when the client does nothing else;
  cli  `chat4all upload FILE --parallel N --json`, a new process as a user runs it: start-up,
       reading the file once, hashing it while the chunks go out, `complete`.
MB/s is the file size (10^6 bytes) over each wall time; `cli / api` is the share of the API's
figure the command-line client reaches. "cli without start-up" uses the time the command reports
for the upload itself (`seconds`), leaving out the interpreter's start and the imports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import parse_size, table, write_json
from benchmarks.deploy import Deployment
from benchmarks.ports import low_port

MB = 1_000_000
PASSWORD = "bench-password-1"
BLOCK = 16 * 1024 * 1024


def write_random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for start in range(0, size, BLOCK):
            block = os.urandom(min(BLOCK, size - start))
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def raw_api_upload(base_url: str, token: str, path: Path, checksum: str, parallel: int) -> float:
    """Seconds for initiate, every chunk PATCHed (`parallel` at a time) and complete."""
    size = path.stat().st_size
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=parallel + 1)
    with httpx.Client(base_url=base_url, headers=headers, timeout=120, limits=limits) as client, open(path, "rb") as f:
        started = time.perf_counter()
        initiated = client.post("/v1/files/initiate", json={"filename": path.name, "file_size": size})
        initiated.raise_for_status()
        file_id, chunk_size = initiated.json()["file_id"], initiated.json()["chunk_size"]

        def send(index: int) -> None:
            data = os.pread(f.fileno(), chunk_size, index * chunk_size)
            response = client.patch("/v1/files/upload", params={"file_id": file_id, "chunk_id": index}, content=data,
                                    headers={"Content-Type": "application/octet-stream"})
            response.raise_for_status()

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(send, range(initiated.json()["total_chunks"])))
        client.post("/v1/files/complete", json={"file_id": file_id, "checksum": checksum}).raise_for_status()
        return time.perf_counter() - started


def cli_upload(env: dict[str, str], path: Path, checksum: str, parallel: int) -> tuple[float, float]:
    """Seconds for the whole command, and those it reports for the upload itself (start-up left out)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "chat4all.entrypoints.cli", "upload", str(path), "--parallel",
                           str(parallel), "--json", "--restart"], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"chat4all upload failed: {done.stderr}")
    result = json.loads(done.stdout)
    if result["checksum"] != checksum:
        raise RuntimeError("chat4all upload reported another checksum")
    return elapsed, result["seconds"]


def client_env(deployment: Deployment, home: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_STATE_HOME": str(home / "state")}
    subprocess.run([sys.executable, "-m", "chat4all.entrypoints.cli", "login", "--url", deployment.base_url, "bench",
                    "--password-stdin"], env=env, input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = parse_size(args.size)
    with Deployment(args.profile, port=low_port(), worker=False) as deployment:
        deployment.cli("users", "add", "bench", "--password", PASSWORD)
        env = client_env(deployment, deployment.workdir / "client")
        token = json.loads((deployment.workdir / "client/config/chat4all/credentials.json").read_text())["access_token"]
        source = deployment.workdir / "upload.bin"
        checksum = write_random_file(source, size)
        rounds = []
        try:
            for index in range(args.rounds):
                # Which goes first alternates, so a machine that speeds up or slows down favours neither.
                if index % 2:
                    cli, cli_inside = cli_upload(env, source, checksum, args.parallel)
                    api = raw_api_upload(deployment.base_url, token, source, checksum, args.parallel)
                else:
                    api = raw_api_upload(deployment.base_url, token, source, checksum, args.parallel)
                    cli, cli_inside = cli_upload(env, source, checksum, args.parallel)
                rounds.append({"api_seconds": api, "cli_seconds": cli, "cli_upload_seconds": cli_inside,
                               "api_mb_s": size / MB / api, "cli_mb_s": size / MB / cli,
                               "cli_upload_mb_s": size / MB / cli_inside})
        finally:
            source.unlink()
        return {"size_bytes": size, "profile": args.profile, "parallel": args.parallel, "rounds": rounds,
                "deployment": deployment.describe()}


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--size", default="2GiB", help="file size, e.g. 2GiB, 200MiB (default 2GiB)")
    cli.add_argument("--profile", choices=("embedded", "distributed"), default="embedded")
    cli.add_argument("--parallel", type=int, default=4, help="chunks in flight, for both (default 4)")
    cli.add_argument("--rounds", type=int, default=1, help="api then cli, this many times (default 1)")
    cli.add_argument("--json", help="write the figures here")
    args = cli.parse_args()
    report = run(args)
    rows = [
        (index + 1, f"{r['api_mb_s']:.1f}", f"{r['cli_mb_s']:.1f}", f"{r['cli_mb_s'] / r['api_mb_s']:.0%}",
         f"{r['cli_upload_mb_s']:.1f}", f"{r['cli_upload_mb_s'] / r['api_mb_s']:.0%}")
        for index, r in enumerate(report["rounds"])
    ]
    print(f"{report['size_bytes'] / MB:.0f} MB, {args.profile}, {args.parallel} chunks in flight")
    header = ("round", "api MB/s", "cli MB/s", "cli / api", "cli without start-up", "/ api")
    print(table(rows, header=header))
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
