"""S3FileStorage completing an upload again, concurrently, after its chunks were released, or with its
answer lost, against a real S3 server: the file is stored once and never replaced."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from uuid import uuid4

import pytest

from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions
from chat4all.domain.errors import Conflict
from tests.integration.s3_chunks import MiB, copies_made_ahead, put_all, read_all, sha256
from tests.integration.s3_fixtures import (  # noqa: F401 - fixtures
    multipart_uploads,
    object_bytes,
    s3_client,
    s3_prefix,
    s3_settings,
    s3_storage,
)

pytestmark = pytest.mark.services


async def test_assembling_again_stores_the_same_file(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str
) -> None:
    # Chunks of 5 MiB sent in order: the first assembly uses the parts copied ahead, the second
    # (a retry after the completion could not be recorded) reads every chunk back.
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(100)]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2])
    await copies_made_ahead(s3_storage, upload_id)
    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)

    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)

    assert object_bytes(s3_client, s3_settings.bucket, s3_storage.file_key(upload_id)) == whole
    assert await s3_storage.stored_chunks(upload_id) == {0: 5 * MiB, 1: 5 * MiB, 2: 100}
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []


SIZES = {"part copies": [5 * MiB, 5 * MiB, 100], "upload of small chunks": [1000, 1000]}


@pytest.mark.parametrize("sizes", SIZES.values(), ids=SIZES.keys())
async def test_assembling_other_bytes_over_a_stored_file_conflicts_and_keeps_it(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str, sizes: list[int]
) -> None:
    # A completion verified and stored the file; before it was recorded, a chunk was re-sent and
    # another completion asked for the new bytes.
    upload_id = uuid4()
    chunks = [os.urandom(size) for size in sizes]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, list(range(len(chunks))))
    assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)
    chunks[1] = os.urandom(sizes[1])
    await s3_storage.put_chunk(upload_id, 1, chunks[1])

    with pytest.raises(Conflict) as failure:
        await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(b"".join(chunks)))

    assert failure.value.code == "upload_completed"
    assert "different checksum" in failure.value.detail
    assert object_bytes(s3_client, s3_settings.bucket, s3_storage.file_key(upload_id)) == whole
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []


@pytest.mark.parametrize("sizes", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("stored", ["the same bytes", "other bytes"])
async def test_a_file_stored_while_assembling_is_not_replaced(
    s3_storage: S3FileStorage,
    s3_client: Any,
    s3_settings: S3StorageOptions,
    s3_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    sizes: list[int],
    stored: str,
) -> None:
    # Another completion stores the file between this one's hashing and its CompleteMultipartUpload:
    # only a write conditional on the file not existing can tell.
    upload_id = uuid4()
    chunks = [os.urandom(size) for size in sizes]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, list(range(len(chunks))))
    there_first = whole if stored == "the same bytes" else os.urandom(len(whole))
    hash_chunks = s3_storage._assembler.hash_chunks

    async def hash_then_another_completion_stores(*args: Any, **kwargs: Any) -> Any:
        hashed = await hash_chunks(*args, **kwargs)
        s3_client.put_object(Bucket=s3_settings.bucket, Key=s3_storage.file_key(upload_id), Body=there_first)
        return hashed

    monkeypatch.setattr(s3_storage._assembler, "hash_chunks", hash_then_another_completion_stores)

    if stored == "the same bytes":
        assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)
    else:
        with pytest.raises(Conflict) as failure:
            await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole))
        assert failure.value.code == "upload_completed"

    assert object_bytes(s3_client, s3_settings.bucket, s3_storage.file_key(upload_id)) == there_first
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []


async def test_releasing_chunks_twice_is_fine_and_leaves_the_file_and_other_uploads(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str
) -> None:
    upload_id, other = uuid4(), uuid4()
    await s3_storage.put_chunk(upload_id, 0, b"kept as a file")
    await s3_storage.put_chunk(other, 0, b"still uploading")
    await s3_storage.assemble_if_matches(upload_id, 1, sha256(b"kept as a file"))

    await asyncio.gather(s3_storage.release_chunks(upload_id), s3_storage.release_chunks(upload_id))
    await s3_storage.release_chunks(upload_id)
    await s3_storage.release_chunks(uuid4())

    assert await s3_storage.stored_chunks(upload_id) == {}
    assert await read_all(s3_storage, upload_id) == b"kept as a file"
    assert await s3_storage.stored_chunks(other) == {0: len(b"still uploading")}
    keys = [item["Key"] for item in s3_client.list_objects_v2(Bucket=s3_settings.bucket, Prefix=s3_prefix).get("Contents", ())]
    assert sorted(keys) == sorted([s3_storage.file_key(upload_id), s3_storage.chunk_key(other, 0)])


async def test_completing_after_the_chunks_were_released_reports_the_upload_as_completed(
    s3_storage: S3FileStorage,
) -> None:
    upload_id = uuid4()
    await s3_storage.put_chunk(upload_id, 0, b"once")
    await s3_storage.assemble_if_matches(upload_id, 1, sha256(b"once"))
    await s3_storage.release_chunks(upload_id)

    with pytest.raises(Conflict) as failure:
        await s3_storage.assemble_if_matches(upload_id, 1, sha256(b"once"))

    assert failure.value.code == "upload_completed"
    assert await read_all(s3_storage, upload_id) == b"once"


async def test_concurrent_completions_store_the_file_once(s3_storage: S3FileStorage) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB), os.urandom(100)]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, [0, 1])

    outcomes = await asyncio.gather(
        *(s3_storage.assemble_if_matches(upload_id, 2, sha256(whole)) for _ in range(3)), return_exceptions=True
    )

    assert any(outcome == sha256(whole) for outcome in outcomes)
    for outcome in outcomes:
        assert outcome == sha256(whole) or (isinstance(outcome, Conflict) and outcome.code == "upload_completed"), outcome
    assert await read_all(s3_storage, upload_id) == whole


@pytest.mark.parametrize("sizes", SIZES.values(), ids=SIZES.keys())
async def test_a_completion_whose_answer_was_lost_still_succeeds(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, monkeypatch: pytest.MonkeyPatch, sizes: list[int]
) -> None:
    # CompleteMultipartUpload stored the file, its answer was lost, and the client library's retry
    # found the multipart upload gone: the file holds this completion's bytes, so it succeeded.
    from botocore.exceptions import ClientError

    upload_id = uuid4()
    chunks = [os.urandom(size) for size in sizes]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, list(range(len(chunks))))
    complete = s3_storage._bucket.client.complete_multipart_upload

    def complete_then_lose_the_answer(**kwargs: Any) -> Any:
        complete(**kwargs)
        raise ClientError({"Error": {"Code": "NoSuchUpload", "Message": "gone"}}, "CompleteMultipartUpload")

    monkeypatch.setattr(s3_storage._bucket.client, "complete_multipart_upload", complete_then_lose_the_answer)

    assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)
    assert object_bytes(s3_client, s3_settings.bucket, s3_storage.file_key(upload_id)) == whole
