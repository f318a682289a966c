"""S3FileStorage against a real S3 server: discarding an upload, a file deleted behind its back, the
bucket check and an unreachable server."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import attrs
import pytest

from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions, make_s3_client
from chat4all.domain.errors import NotFound, Unavailable
from tests.integration.s3_chunks import put_all, read_all, sha256
from tests.integration.s3_fixtures import (  # noqa: F401 - fixtures
    multipart_uploads,
    object_bytes,
    s3_client,
    s3_prefix,
    s3_settings,
    s3_storage,
)
from tests.ports import low_port

pytestmark = pytest.mark.services


async def test_discard_removes_chunks_and_aborts_partial_objects(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str
) -> None:
    upload_id = uuid4()
    await put_all(s3_storage, upload_id, [b"a" * 10, b"b" * 10], [0, 1])
    s3_client.create_multipart_upload(Bucket=s3_settings.bucket, Key=s3_storage.file_key(upload_id))
    assert len(multipart_uploads(s3_client, s3_settings.bucket, s3_prefix)) == 1

    await s3_storage.discard(upload_id)
    await s3_storage.discard(upload_id)

    assert await s3_storage.stored_chunks(upload_id) == {}
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []
    assert not await s3_storage.file_exists(upload_id)


async def test_discard_leaves_other_uploads_alone(s3_storage: S3FileStorage) -> None:
    doomed, kept = uuid4(), uuid4()
    await s3_storage.put_chunk(doomed, 0, b"x")
    await s3_storage.put_chunk(kept, 0, b"y")

    await s3_storage.discard(doomed)

    assert await s3_storage.stored_chunks(kept) == {0: 1}


async def test_a_deleted_file_no_longer_exists(s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions) -> None:
    upload_id = uuid4()
    await s3_storage.put_chunk(upload_id, 0, b"short-lived")
    await s3_storage.assemble_if_matches(upload_id, 1, sha256(b"short-lived"))
    assert await s3_storage.file_exists(upload_id)

    s3_client.delete_object(Bucket=s3_settings.bucket, Key=s3_storage.file_key(upload_id))

    assert not await s3_storage.file_exists(upload_id)
    with pytest.raises(NotFound):
        await read_all(s3_storage, upload_id)


async def test_check_and_ensure_bucket(s3_client: Any, s3_settings: S3StorageOptions) -> None:
    bucket = f"chat4all-check-{uuid4().hex[:10]}"
    storage = S3FileStorage(s3_client, bucket)
    try:
        with pytest.raises(Unavailable):
            await storage.check()
        await storage.ensure_bucket()
        await storage.ensure_bucket()
        await storage.check()
    finally:
        await storage.close()
        s3_client.delete_bucket(Bucket=bucket)


async def test_an_unreachable_server_is_reported_as_unavailable(s3_settings: S3StorageOptions) -> None:
    dead = attrs.evolve(s3_settings, endpoint_url=f"http://127.0.0.1:{low_port()}")
    storage = S3FileStorage(make_s3_client(dead), dead.bucket)
    try:
        with pytest.raises(Unavailable, match="object storage unavailable"):
            await storage.check()
        with pytest.raises(Unavailable):
            await storage.stored_chunks(uuid4())
    finally:
        await storage.close()
