"""Runs the same HTTP contract against either profile.

embedded: the Litestar app in-process (SQLite, local files, in-process bus) via its test client.
distributed: `chat4all serve` and `chat4all worker` subprocesses on PostgreSQL, Kafka and S3.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.ports import low_port

FAST_ARGON2 = {"CHAT4ALL_ARGON2_TIME_COST": "1", "CHAT4ALL_ARGON2_MEMORY_KIB": "8192"}
# A short throttling window, so a test can watch it free up; the per-user limit stays at its default.
LOGIN_THROTTLE = {"CHAT4ALL_LOGIN_WINDOW_SECONDS": "3", "CHAT4ALL_LOGIN_MAX_FAILURES_PER_ADDRESS": "8"}
PASSWORD = "pass-word-123"
# /metrics is served on the API port only to holders of this token (by default not at all).
METRICS_TOKEN = "metrics-token-for-the-contract-tests"
METRICS = {"CHAT4ALL_METRICS_TOKEN": METRICS_TOKEN}
# The secrets the mock providers sign inbound replies with (unset, a channel takes none).
CHANNEL_SECRETS = {
    "CHAT4ALL_CHANNEL_SECRET_WHATSAPP": "whatsapp-secret-of-the-contract-tests",
    "CHAT4ALL_CHANNEL_SECRET_INSTAGRAM": "instagram-secret-of-the-contract-tests",
}


def distributed_env(tag: str) -> dict[str, str]:
    """Environment for a distributed deployment isolated in a fresh database and bucket."""
    import boto3
    import psycopg

    base_url = os.environ.get("CHAT4ALL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:15432/chat4all_test")
    database = f"chat4all_{tag}_{uuid.uuid4().hex[:8]}"
    admin_url = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    endpoint = os.environ.get("CHAT4ALL_TEST_S3_ENDPOINT", "http://127.0.0.1:17070")
    access = os.environ.get("CHAT4ALL_TEST_S3_ACCESS_KEY", "chat4all")
    secret = os.environ.get("CHAT4ALL_TEST_S3_SECRET_KEY", "chat4all-secret")
    bucket = f"c4a-{tag}-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret, region_name="us-east-1"
    ).create_bucket(Bucket=bucket)
    suffix = uuid.uuid4().hex[:8]
    return {
        **FAST_ARGON2,
        **LOGIN_THROTTLE,
        **METRICS,
        **CHANNEL_SECRETS,
        "CHAT4ALL_PROFILE": "distributed",
        # Own topics and consumer group: deployments sharing the servers never consume each other's events.
        "CHAT4ALL_KAFKA_TOPIC_PREFIX": f"t{tag}{suffix}.",
        "CHAT4ALL_WORKER_GROUP": f"chat4all-{tag}-{suffix}",
        "CHAT4ALL_DATABASE_URL": base_url.rsplit("/", 1)[0] + f"/{database}",
        "CHAT4ALL_KAFKA_BOOTSTRAP": os.environ.get("CHAT4ALL_TEST_KAFKA", "127.0.0.1:19092"),
        "CHAT4ALL_S3_ENDPOINT": endpoint,
        "CHAT4ALL_S3_BUCKET": bucket,
        "CHAT4ALL_S3_ACCESS_KEY": access,
        "CHAT4ALL_S3_SECRET_KEY": secret,
    }


class Processes:
    def __init__(self, env: dict[str, str], workdir: Path):
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.workdir = workdir
        self.running: list[tuple[subprocess.Popen, Path]] = []

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "chat4all.entrypoints.cli", *args],
            env=self.env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, f"chat4all {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str) -> Path:
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "chat4all.entrypoints.cli", *args],
            env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )
        self.running.append((process, log))
        return log

    def stop(self) -> None:
        for process, _ in self.running:
            process.terminate()
        for process, _ in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


async def wait_ready(client: httpx.AsyncClient, logs: list[Path], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("service never became ready:\n" + "\n".join(log.read_text()[-3000:] for log in logs))


class Deployment:
    """A running hub reached over HTTP, plus a direct line to register users (there is no signup endpoint)."""

    def __init__(self, profile: str, client: httpx.AsyncClient, hub, workdir: Path, logs: list[Path] = (), app=None):
        self.profile = profile
        self.client = client
        self.hub = hub
        self.workdir = workdir
        self.logs = list(logs)
        self.app = app  # the ASGI app when it runs in-process

    @asynccontextmanager
    async def client_from(self, address: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client whose requests come from another loopback address, e.g. 127.0.0.7 (login throttling
        counts failures per client address)."""
        if self.app is not None:
            transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        else:
            transport = httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(transport=transport, base_url=self.client.base_url, timeout=30) as client:
            yield client

    async def add_user(self, username: str | None = None) -> tuple[str, str]:
        username = username or f"user_{uuid.uuid4().hex[:10]}"
        user = await self.hub.register_user.execute(username, PASSWORD)
        return str(user.id), username

    async def login(self, username: str) -> dict[str, str]:
        response = await self.client.post("/auth/token", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def user(self) -> tuple[str, dict[str, str]]:
        """A new user's id and auth headers."""
        user_id, username = await self.add_user()
        return user_id, await self.login(username)

    def connector_log(self) -> str:
        return "".join(log.read_text() for log in self.logs)


@asynccontextmanager
async def embedded(tmp_path: Path, extra_env: dict[str, str] | None = None) -> AsyncIterator[Deployment]:
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.cli import migrate
    from chat4all.entrypoints.settings import load_settings
    from chat4all.entrypoints.web import web_app

    settings = load_settings(
        {
            **FAST_ARGON2,
            **LOGIN_THROTTLE,
            **METRICS,
            **CHANNEL_SECRETS,
            "CHAT4ALL_DATA_DIR": str(tmp_path / "data"),
            "CHAT4ALL_CHUNK_SIZE": "1024",
            **(extra_env or {}),
        }
    )
    await migrate(settings)
    hub = build("embedded", settings)
    # The hub runs on the test's own event loop (Litestar's test client would start it on another).
    app = web_app(hub, settings, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app)
    await hub.start()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield Deployment("embedded", client, hub, tmp_path, app=app)
    finally:
        await hub.stop()


@asynccontextmanager
async def distributed(
    tmp_path: Path, extra_env: dict[str, str] | None = None, *, workers: int = 1
) -> AsyncIterator[Deployment]:
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.settings import load_settings

    env = {**distributed_env("http"), **(extra_env or {})}
    processes = Processes(env, tmp_path)
    processes.cli("migrate")
    port = low_port()
    logs = [processes.start("api", "serve", "--port", str(port))]
    logs += [processes.start(f"worker{n or ''}", "worker") for n in range(workers)]
    hub = build("api", load_settings(env))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await wait_ready(client, logs)
            yield Deployment("distributed", client, hub, tmp_path, logs)
    finally:
        processes.stop()
        await hub.stop()
        await discard_distributed(env)


async def discard_distributed(env: dict[str, str]) -> None:
    """Drops the deployment's database, bucket and topics so repeated runs leave nothing behind."""
    import boto3
    import psycopg
    from aiokafka.admin import AIOKafkaAdminClient

    database_url = env["CHAT4ALL_DATABASE_URL"]
    admin_url = database_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    bucket = boto3.resource(
        "s3", endpoint_url=env["CHAT4ALL_S3_ENDPOINT"], aws_access_key_id=env["CHAT4ALL_S3_ACCESS_KEY"],
        aws_secret_access_key=env["CHAT4ALL_S3_SECRET_KEY"], region_name="us-east-1",
    ).Bucket(env["CHAT4ALL_S3_BUCKET"])
    bucket.objects.all().delete()
    for upload in bucket.multipart_uploads.all():
        upload.abort()
    bucket.delete()
    admin = AIOKafkaAdminClient(bootstrap_servers=env["CHAT4ALL_KAFKA_BOOTSTRAP"], request_timeout_ms=10_000)
    await admin.start()
    try:
        prefix = env["CHAT4ALL_KAFKA_TOPIC_PREFIX"]
        if doomed := [name for name in await admin.list_topics() if name.startswith(prefix)]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
