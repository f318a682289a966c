"""Fixtures for tests against the real S3 server that `scripts/services.sh up` starts.

Every test gets its own key prefix in the shared test bucket and cleans it up afterwards.
An unreachable server fails the tests (it is never a reason to skip them).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import uuid4

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions, make_s3_client


def s3_test_settings() -> S3StorageOptions:
    return S3StorageOptions(
        endpoint_url=os.environ.get("CHAT4ALL_TEST_S3_ENDPOINT", "http://127.0.0.1:17070"),
        access_key=os.environ.get("CHAT4ALL_TEST_S3_ACCESS_KEY", "chat4all"),
        secret_key=os.environ.get("CHAT4ALL_TEST_S3_SECRET_KEY", "chat4all-secret"),
        region=os.environ.get("CHAT4ALL_TEST_S3_REGION", "us-east-1"),
        bucket=os.environ.get("CHAT4ALL_TEST_S3_BUCKET", "chat4all-test"),
    )


@pytest.fixture(scope="session")
def s3_settings() -> S3StorageOptions:
    return s3_test_settings()


@pytest.fixture(scope="session")
def s3_client(s3_settings: S3StorageOptions) -> Iterator[Any]:
    client = make_s3_client(s3_settings)
    try:
        client.list_buckets()
    except (BotoCoreError, ClientError) as error:
        pytest.fail(
            f"the S3 server at {s3_settings.endpoint_url} did not answer ({error}); "
            "start it with `bash scripts/services.sh up` and load `scripts/services.sh env`",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture
def s3_prefix() -> str:
    return f"test-{uuid4().hex[:12]}/"


@pytest.fixture
async def s3_storage(s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str) -> AsyncIterator[S3FileStorage]:
    storage = S3FileStorage(s3_client, s3_settings.bucket, key_prefix=s3_prefix, url_ttl_seconds=300)
    await storage.ensure_bucket()
    yield storage
    await storage.close()
    remove_prefix(s3_client, s3_settings.bucket, s3_prefix)


def remove_prefix(client: Any, bucket: str, prefix: str) -> None:
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", ()):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def multipart_uploads(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    return client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])


def object_bytes(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()
