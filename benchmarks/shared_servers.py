"""The shared servers a distributed benchmark deployment runs on (`scripts/services.sh`): their
addresses, a database of its own, an S3 client, a consumer group starting at the topics' ends."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


DEFAULTS = {
    "CHAT4ALL_TEST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:15432/chat4all_test",
    "CHAT4ALL_TEST_KAFKA": "127.0.0.1:19092",
    "CHAT4ALL_TEST_S3_ENDPOINT": "http://127.0.0.1:17070",
    "CHAT4ALL_TEST_S3_ACCESS_KEY": "chat4all",
    "CHAT4ALL_TEST_S3_SECRET_KEY": "chat4all-secret",
    "CHAT4ALL_TEST_S3_REGION": "us-east-1",
}
PG_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "max_connections", "shared_buffers", "wal_level",
               "server_version")


def service(name: str) -> str:
    return os.environ.get(name) or DEFAULTS[name]


def services_up() -> None:
    """`bash scripts/services.sh up`: PostgreSQL, Kafka and S3 on loopback (idempotent)."""
    subprocess.run(["bash", str(REPO / "scripts" / "services.sh"), "up"], check=True, cwd=REPO)


def with_database(url: str, database: str) -> str:
    """`url` naming `database` instead, keeping its query (e.g. `?host=/run/dir` for a Unix socket)."""
    base, question, query = url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{database}" + question + query


def admin_database_url() -> str:
    return service("CHAT4ALL_TEST_DATABASE_URL").replace("postgresql+psycopg://", "postgresql://")


def postgres_settings() -> dict[str, str]:
    """The settings the PostgreSQL server runs with (fsync, synchronous_commit, ...)."""
    import psycopg

    with psycopg.connect(admin_database_url(), autocommit=True, connect_timeout=5) as connection:
        return {name: str(connection.execute(f"SHOW {name}").fetchone()[0]) for name in PG_SETTINGS}


def s3_client() -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=service("CHAT4ALL_TEST_S3_ENDPOINT"),
        aws_access_key_id=service("CHAT4ALL_TEST_S3_ACCESS_KEY"),
        aws_secret_access_key=service("CHAT4ALL_TEST_S3_SECRET_KEY"),
        region_name=service("CHAT4ALL_TEST_S3_REGION"),
    )


async def start_group_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    """Commits the current end offsets for a new consumer group: its worker sees only new events."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        counts = {entry["topic"]: len(entry["partitions"]) for entry in await admin.describe_topics(topics)}
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, index) for topic in topics for index in range(counts.get(topic, 0))]
    if not partitions:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()
