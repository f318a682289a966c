"""The real servers the fault tests run against (those of `scripts/services.sh`), and what
every fault test shares: the `[faults]` progress lines."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

KAFKA = os.environ.get("CHAT4ALL_TEST_KAFKA", "127.0.0.1:19092")
DATABASE_URL = os.environ.get(
    "CHAT4ALL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:15432/chat4all_test"
)
S3_ENDPOINT = os.environ.get("CHAT4ALL_TEST_S3_ENDPOINT", "http://127.0.0.1:17070")
REPO = Path(__file__).resolve().parents[3]
SERVICES_SCRIPT = REPO / "scripts" / "services.sh"


def say(text: str) -> None:
    print(f"[faults] {text}", flush=True)


def admin_dsn(database: str | None = None) -> str:
    url = DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    return url if database is None else url.rsplit("/", 1)[0] + f"/{database}"


def require_services() -> None:
    """Fails (never skips) the test when a server of `scripts/services.sh` does not answer."""
    import boto3
    from botocore.config import Config

    from chat4all.adapters.kafka import check_broker

    problems = []
    try:
        with psycopg.connect(admin_dsn(), connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        problems.append(f"PostgreSQL ({admin_dsn()}): {error}")
    try:
        asyncio.run(check_broker(KAFKA, timeout=5.0))  # called in a thread of its own
    except Exception as error:
        problems.append(f"Kafka ({KAFKA}): {type(error).__name__}: {error}")
    try:
        boto3.client(
            "s3",
            endpoint_url=S3_ENDPOINT,
            aws_access_key_id=os.environ.get("CHAT4ALL_TEST_S3_ACCESS_KEY", "chat4all"),
            aws_secret_access_key=os.environ.get("CHAT4ALL_TEST_S3_SECRET_KEY", "chat4all-secret"),
            region_name="us-east-1",
            config=Config(connect_timeout=5, retries={"max_attempts": 1}),
        ).list_buckets()
    except Exception as error:
        problems.append(f"S3 ({S3_ENDPOINT}): {type(error).__name__}: {error}")
    if problems:
        pytest.fail("servers unreachable, run `bash scripts/services.sh up`:\n" + "\n".join(problems), pytrace=False)


def services(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> None:
    """Runs scripts/services.sh (e.g. `down kafka`, `up kafka`)."""
    done = subprocess.run(
        ["bash", str(SERVICES_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, f"services.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
