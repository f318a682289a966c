"""A distributed deployment for the end-to-end tests: its own database, bucket, consumer group and
topic prefix on the shared servers, `chat4all migrate`, then `serve` and `worker` as processes."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from botocore.exceptions import BotoCoreError, ClientError

from chat4all.adapters.kafka import decode_event
from chat4all.application.work import DEAD_LETTER_STREAM as DEAD_LETTERS
from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
from chat4all.application.work import delivery_stream as channel_topic
from tests.ports import low_port

KAFKA = os.environ.get("CHAT4ALL_TEST_KAFKA", "127.0.0.1:19092")
DATABASE_URL = os.environ.get(
    "CHAT4ALL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:15432/chat4all_test"
)
S3_ENDPOINT = os.environ.get("CHAT4ALL_TEST_S3_ENDPOINT", "http://127.0.0.1:17070")
S3_ACCESS = os.environ.get("CHAT4ALL_TEST_S3_ACCESS_KEY", "chat4all")
S3_SECRET = os.environ.get("CHAT4ALL_TEST_S3_SECRET_KEY", "chat4all-secret")
S3_REGION = os.environ.get("CHAT4ALL_TEST_S3_REGION", "us-east-1")
PREFIX = f"c4a-e2e-{uuid.uuid4().hex[:10]}."
PASSWORD = "worker-e2e-pass"
DELIVERY_TIMEOUT = 5.0
CONNECTOR_LINE = re.compile(
    r"^INFO: Mensagem [0-9a-f-]{36} enviada para o usuário [0-9a-f-]{36} no (WhatsApp|Instagram)$"
)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chat4all.entrypoints.cli", *args]


class Deployment:
    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}
        self.users: dict[str, str] = {}
        self.base_url = ""
        self.timings: dict[str, float] = {}
        self.latencies: list[float] = []

    def run(self, *args: str) -> str:
        done = subprocess.run(command(*args), env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"chat4all {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            command(*args),
            env=self.env,
            stdout=(self.workdir / f"{name}.out").open("w"),
            stderr=(self.workdir / f"{name}.err").open("w"),
        )
        self.processes[name] = process
        return process

    def output(self, name: str) -> str:
        return (self.workdir / f"{name}.out").read_text()

    def errors(self, name: str) -> str:
        return (self.workdir / f"{name}.err").read_text()

    def diagnostics(self) -> str:
        return "\n".join(
            f"--- {name} stdout ---\n{self.output(name)[-3000:]}\n--- {name} stderr ---\n{self.errors(name)[-5000:]}"
            for name in self.processes
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fresh_database() -> str:
    name = f"c4a_worker_e2e_{uuid.uuid4().hex[:10]}"
    admin_url = DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL at {admin_url} did not answer ({error}); run `bash scripts/services.sh up`", pytrace=False
        )
    return name


def drop_database(name: str) -> None:
    admin_url = DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=S3_ENDPOINT,
        aws_access_key_id=S3_ACCESS,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )


def delete_bucket(bucket: str) -> None:
    """The deployment's bucket, with what the tests stored, so runs leave nothing in the S3 server."""
    client = s3_client()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


async def partition_counts(topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        return {entry["topic"]: len(entry["partitions"]) for entry in await admin.describe_topics(topics)}
    finally:
        await admin.close()


def deployment_topics() -> list[str]:
    return [
        PREFIX + name for name in (MESSAGE_PROCESSING, *map(channel_topic, ("whatsapp", "instagram")), DEAD_LETTERS)
    ]


async def delete_topics(topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        present = set(await admin.list_topics())
        if doomed := [name for name in topics if name in present]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def topic_events(topic: str) -> list[tuple[str, dict]]:
    """(key, payload) of every record in the topic now, read from the beginning with no group."""
    count = (await partition_counts([topic]))[topic]
    partitions = [TopicPartition(topic, index) for index in range(count)]
    # auto_offset_reset="earliest" rather than seek_to_beginning(): right after assign(), a pending
    # reset to the default ("latest") may otherwise land after the seek.
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        events = []
        deadline = time.monotonic() + 30
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                events += [(record.key.decode(), decode_event(record.value)) for record in records]
        return events
    finally:
        await consumer.stop()


def wait_for(predicate, timeout: float, what: str, deployment: Deployment) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for name, process in deployment.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}\n{deployment.diagnostics()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{deployment.diagnostics()}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("worker-e2e")
    database = fresh_database()
    bucket = f"c4a-worker-e2e-{uuid.uuid4().hex[:10]}"
    group = f"chat4all-worker-e2e-{uuid.uuid4().hex[:10]}"
    env = {
        **{
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CHAT4ALL_") or key.startswith("CHAT4ALL_TEST_")
        },
        "PYTHONUNBUFFERED": "1",
        "CHAT4ALL_PROFILE": "distributed",
        "CHAT4ALL_DATA_DIR": str(workdir / "data"),
        "CHAT4ALL_DATABASE_URL": DATABASE_URL.rsplit("/", 1)[0] + f"/{database}",
        "CHAT4ALL_KAFKA_BOOTSTRAP": KAFKA,
        "CHAT4ALL_S3_ENDPOINT": S3_ENDPOINT,
        "CHAT4ALL_S3_BUCKET": bucket,
        "CHAT4ALL_S3_ACCESS_KEY": S3_ACCESS,
        "CHAT4ALL_S3_SECRET_KEY": S3_SECRET,
        "CHAT4ALL_S3_REGION": S3_REGION,
        "CHAT4ALL_WORKER_GROUP": group,
        "CHAT4ALL_KAFKA_TOPIC_PREFIX": PREFIX,
        "CHAT4ALL_ARGON2_TIME_COST": "1",
        "CHAT4ALL_ARGON2_MEMORY_KIB": "8192",
        "CHAT4ALL_LOG_LEVEL": "INFO",
    }
    # Six Python processes start here; letting them cache bytecode (in the gitignored __pycache__
    # directories) saves each one seconds of compiling on a small machine.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    running = Deployment(workdir, env)
    try:
        started = time.monotonic()
        running.run("migrate")  # schema, bucket and topics
        running.timings["migrate"] = time.monotonic() - started
        s3_client().head_bucket(Bucket=bucket)  # migrate created it
        counts = asyncio.run(partition_counts(deployment_topics()))
        assert counts == {name: 6 for name in deployment_topics()}, counts  # CHAT4ALL_KAFKA_PARTITIONS default

        port = low_port()
        running.base_url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        running.start("api", "serve", "--port", str(port))
        running.start("worker", "worker")
        adders = {
            name: subprocess.Popen(
                command("users", "add", name, "--password", PASSWORD), env=env, stdout=subprocess.PIPE, text=True
            )
            for name in ("ana", "bruno", "carla")
        }
        for name, adder in adders.items():
            out, _ = adder.communicate(timeout=120)
            assert adder.returncode == 0, f"users add {name} failed"
            running.users[name] = out.strip()

        def api_ready() -> bool:
            try:
                return httpx.get(f"{running.base_url}/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(
            lambda: (
                "partitions assigned: " in running.errors("worker")
                and "partitions assigned: 0 " not in running.errors("worker")
            ),
            60,
            "the worker's partitions",
            running,
        )
        running.timings["worker start-up"] = time.monotonic() - started
        wait_for(api_ready, 60, "the API's readiness", running)
        running.timings["api start-up"] = time.monotonic() - started
        yield running
    finally:
        running.stop()
        print(f"\nworker e2e timings: { {k: round(v, 2) for k, v in running.timings.items()} }")
        if running.latencies:
            ordered = sorted(running.latencies)
            print(
                f"accept->delivered over {len(ordered)} messages: min {ordered[0] * 1000:.0f} ms, "
                f"median {ordered[len(ordered) // 2] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
            )
        try:
            drop_database(database)
        except psycopg.Error:
            pass
        try:
            delete_bucket(bucket)
        except (BotoCoreError, ClientError):
            pass
        asyncio.run(delete_topics(deployment_topics()))
