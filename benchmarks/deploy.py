"""Starts a throw-away Chat4All deployment for a benchmark and stops it afterwards.

embedded:    `chat4all serve` on a fresh data directory (SQLite + local files + in-process bus).
distributed: a fresh PostgreSQL database and S3 bucket on the servers `scripts/services.sh` runs,
             `chat4all migrate`, then `chat4all serve` and `chat4all worker` subprocesses; the worker
             gets a consumer group of its own whose offsets start at the topics' current ends (the
             topic names are fixed, and other runs' events for other databases are still in them).

    uv run python -m benchmarks.deploy --profile distributed     # start, print env + URL, wait for Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from benchmarks.ports import low_port
from benchmarks.shared_servers import (
    REPO,
    admin_database_url,
    postgres_settings,
    s3_client,
    service,
    services_up,
    start_group_at_end,
    with_database,
)


class Deployment:
    """The processes of one deployment; `env` is what the CLI (and the benchmark tools) need to reach it."""

    def __init__(self, profile: str, workdir: Path | None = None, *, extra_env: dict[str, str] | None = None,
                 port: int | None = None, worker: bool = True):
        self.profile = profile
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"chat4all-bench-{profile}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or low_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(extra_env or {})
        self.with_worker = worker
        self.env: dict[str, str] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.database: str | None = None
        self.bucket: str | None = None
        self.group: str | None = None
        self.pg_settings: dict[str, str] = {}

    # -- set-up

    def _base_env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CHAT4ALL_") or k.startswith("CHAT4ALL_TEST_")}
        return {**inherited, "PYTHONUNBUFFERED": "1", "CHAT4ALL_DATA_DIR": str(self.workdir / "data")}

    def _distributed_env(self) -> dict[str, str]:
        import psycopg

        tag = uuid.uuid4().hex[:8]
        self.database = f"chat4all_bench_{tag}"
        with psycopg.connect(admin_database_url(), autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{self.database}"')
        self.bucket = f"c4a-bench-{tag}"
        s3_client().create_bucket(Bucket=self.bucket)
        self.group = f"chat4all-bench-{tag}"
        self.pg_settings = postgres_settings()
        return {
            "CHAT4ALL_PROFILE": "distributed",
            "CHAT4ALL_DATABASE_URL": with_database(service("CHAT4ALL_TEST_DATABASE_URL"), self.database),
            "CHAT4ALL_KAFKA_BOOTSTRAP": service("CHAT4ALL_TEST_KAFKA"),
            "CHAT4ALL_S3_ENDPOINT": service("CHAT4ALL_TEST_S3_ENDPOINT"),
            "CHAT4ALL_S3_BUCKET": self.bucket,
            "CHAT4ALL_S3_ACCESS_KEY": service("CHAT4ALL_TEST_S3_ACCESS_KEY"),
            "CHAT4ALL_S3_SECRET_KEY": service("CHAT4ALL_TEST_S3_SECRET_KEY"),
            "CHAT4ALL_S3_REGION": service("CHAT4ALL_TEST_S3_REGION"),
            "CHAT4ALL_WORKER_GROUP": self.group,
        }

    def cli(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "chat4all.entrypoints.cli", *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO,
        )
        if done.returncode != 0:
            raise RuntimeError(f"chat4all {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "chat4all.entrypoints.cli", *args],
            env=self.env, cwd=REPO,
            stdout=(self.workdir / f"{name}.out").open("w"), stderr=(self.workdir / f"{name}.err").open("w"),
        )
        self.processes[name] = process
        return process

    def start(self, timeout: float = 90.0) -> Deployment:
        self.env = self._base_env()
        if self.profile == "distributed":
            self.env.update(self._distributed_env())
        elif self.profile != "embedded":
            raise ValueError(f"unknown profile {self.profile!r}")
        self.env.update(self.extra_env)
        self.cli("migrate")
        if self.profile == "distributed" and self.with_worker:
            from chat4all.application.work import every_stream
            from chat4all.entrypoints.distributed import channels
            from chat4all.entrypoints.settings import load_settings

            settings = load_settings(self.env)
            topics = [settings.kafka.topic_prefix + stream for stream in every_stream(channels(settings))]
            asyncio.run(start_group_at_end(self.env["CHAT4ALL_KAFKA_BOOTSTRAP"], self.group, topics))
            self._spawn("worker", "worker")
        self._spawn("api", "serve", "--port", str(self.port))
        self._wait_ready(timeout)
        if "worker" in self.processes:
            self._wait_worker(timeout)
        return self

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{self.diagnostics()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.base_url}/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the API never became ready\n{self.diagnostics()}")

    def _wait_worker(self, timeout: float) -> None:
        """Until the worker logged that it got its partitions (INFO lines; at a quieter log level: 30 s at most)."""
        quiet = self.env.get("CHAT4ALL_LOG_LEVEL", "INFO") not in ("DEBUG", "INFO")
        deadline = time.monotonic() + (10 if quiet else timeout)
        while time.monotonic() < deadline:
            self._check_alive()
            text = self.log("worker")
            if "partitions assigned" in text or "worker started" in text:
                return
            time.sleep(0.2)
        if not quiet:
            raise RuntimeError(f"the worker never got its partitions\n{self.diagnostics()}")

    # -- facts

    def pid(self, name: str) -> int | None:
        process = self.processes.get(name)
        return process.pid if process else None

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def log(self, name: str) -> str:
        return "".join(
            path.read_text(errors="replace") for path in (self.workdir / f"{name}.out", self.workdir / f"{name}.err")
            if path.exists()
        )

    def diagnostics(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)[-4000:]}" for name in self.processes)

    def describe(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "base_url": self.base_url,
            "workdir": str(self.workdir),
            "pids": self.pids(),
            "database": self.env.get("CHAT4ALL_DATABASE_URL"),
            "bucket": self.bucket,
            "worker_group": self.group,
            "postgres_settings": self.pg_settings or None,
            "settings": {k: v for k, v in self.env.items() if k.startswith("CHAT4ALL_") and "SECRET" not in k
                         and not k.startswith("CHAT4ALL_TEST_")},
        }

    def env_lines(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in self.env.items() if k.startswith("CHAT4ALL_") and not k.startswith("CHAT4ALL_TEST_"))

    # -- tear-down

    def stop(self, drop: bool = True) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if drop and self.database:
            try:
                import psycopg

                with psycopg.connect(admin_database_url(), autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            except Exception as error:  # leave it behind rather than hide the benchmark's result
                print(f"could not drop database {self.database}: {error}", file=sys.stderr)
        if drop and self.bucket:
            try:
                self._empty_bucket()
            except Exception as error:
                print(f"could not remove bucket {self.bucket}: {error}", file=sys.stderr)
        if drop:
            shutil.rmtree(self.workdir / "data", ignore_errors=True)  # SQLite file and uploaded bytes; logs stay

    def _empty_bucket(self) -> None:
        client = s3_client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
        for upload in client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=self.bucket)

    def __enter__(self) -> Deployment:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--profile", choices=("embedded", "distributed"), default="embedded")
    cli.add_argument("--port", type=int, default=None)
    cli.add_argument("--env-out", help="write the deployment's CHAT4ALL_* settings to this file")
    cli.add_argument("--services-up", action="store_true", help="run `bash scripts/services.sh up` first")
    args = cli.parse_args()
    if args.services_up and args.profile == "distributed":
        services_up()

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill PID` stops the deployment cleanly too
    with Deployment(args.profile, port=args.port) as deployment:
        if args.env_out:
            Path(args.env_out).write_text(deployment.env_lines() + "\n")
        print(f"{deployment.profile} deployment at {deployment.base_url}; pids {deployment.pids()}")
        print(deployment.env_lines())
        print(f"Ctrl-C (or kill {os.getpid()}) stops it", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
