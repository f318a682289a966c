"""S3FileStorage copies chunks into the file's multipart upload as they arrive, against a real S3
server: each part copied once, again when its chunk changed, and aborted when the upload goes."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from uuid import uuid4

import pytest

from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions
from chat4all.adapters.storage.s3_running import COPY_AHEAD_CONCURRENCY
from tests.integration.s3_chunks import (
    MiB,
    copies_made_ahead,
    put_all,
    put_behind_the_api,
    read_all,
    record_reads,
    sha256,
)
from tests.integration.s3_fixtures import (  # noqa: F401 - fixtures
    multipart_uploads,
    object_bytes,
    s3_client,
    s3_prefix,
    s3_settings,
    s3_storage,
)

pytestmark = pytest.mark.services


def record_copies(storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The part numbers copied from chunk objects into the file, in order."""
    copied: list[int] = []
    copy_part = storage._bucket.copy_part

    async def recording(file_key: str, multipart_id: str, number: int, chunk: Any) -> Any:
        copied.append(number)
        return await copy_part(file_key, multipart_id, number, chunk)

    monkeypatch.setattr(storage._bucket, "copy_part", recording)
    return copied


async def test_chunks_hashed_on_arrival_are_copied_into_the_file_once(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied = record_copies(s3_storage, monkeypatch)
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(3)] + [os.urandom(10)]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2, 3])
    await copies_made_ahead(s3_storage, upload_id)
    assert sorted(copied) == [1, 2, 3]  # the small tail waits for completion: only a last part may be small

    assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)

    assert sorted(copied) == [1, 2, 3, 4]
    assert await read_all(s3_storage, upload_id) == whole
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []
    await s3_storage.release_chunks(upload_id)
    assert await s3_storage.stored_chunks(upload_id) == {}


async def test_a_chunk_replaced_after_its_part_was_copied_ahead_is_copied_again(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(3)]
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2])
    await copies_made_ahead(s3_storage, upload_id)
    chunks[1] = os.urandom(5 * MiB)
    put_behind_the_api(s3_client, s3_settings.bucket, s3_storage, upload_id, 1, chunks[1])
    copied = record_copies(s3_storage, monkeypatch)
    whole = b"".join(chunks)

    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)

    assert copied == [2]  # chunk 2 is read back after the changed one, but its part still holds its bytes
    assert await read_all(s3_storage, upload_id) == whole


async def test_copies_still_queued_are_made_by_completing_instead(
    s3_storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Copies ahead run a few at a time; hold them all back, as when chunks arrive faster than that.
    for _ in range(COPY_AHEAD_CONCURRENCY):
        await s3_storage._running.ahead_gate.acquire()
    copied = record_copies(s3_storage, monkeypatch)
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(3)]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2])

    assert await asyncio.wait_for(s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)), 30) == sha256(whole)

    assert sorted(copied) == [1, 2, 3]
    assert await read_all(s3_storage, upload_id) == whole


async def test_discard_aborts_the_parts_copied_ahead(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str
) -> None:
    upload_id = uuid4()
    await put_all(s3_storage, upload_id, [os.urandom(5 * MiB), os.urandom(5 * MiB)], [0, 1])
    await copies_made_ahead(s3_storage, upload_id)
    assert len(multipart_uploads(s3_client, s3_settings.bucket, s3_prefix)) == 1

    await s3_storage.discard(upload_id)

    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []
    assert await s3_storage.stored_chunks(upload_id) == {}


async def test_discard_also_aborts_a_head_start_whose_multipart_upload_was_still_being_created(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = s3_storage._bucket.create_multipart

    async def slow_create(file_key: str) -> str:
        await asyncio.sleep(0.5)
        return await create(file_key)

    monkeypatch.setattr(s3_storage._bucket, "create_multipart", slow_create)
    upload_id = uuid4()
    await s3_storage.put_chunk(upload_id, 0, os.urandom(5 * MiB))

    await s3_storage.discard(upload_id)  # while the head start's multipart upload is being created

    await asyncio.sleep(1)
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []


async def test_an_upload_forgotten_for_newer_ones_aborts_its_parts_copied_ahead(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chat4all.adapters.storage.s3_running.MAX_RUNNING_DIGESTS", 1)
    older, newer = uuid4(), uuid4()
    await s3_storage.put_chunk(older, 0, os.urandom(5 * MiB))
    await copies_made_ahead(s3_storage, older)

    await s3_storage.put_chunk(newer, 0, os.urandom(5 * MiB))
    await copies_made_ahead(s3_storage, newer)

    for _ in range(100):
        keys = [upload["Key"] for upload in multipart_uploads(s3_client, s3_settings.bucket, s3_prefix)]
        if keys == [s3_storage.file_key(newer)]:
            break
        await asyncio.sleep(0.05)
    assert keys == [s3_storage.file_key(newer)]
    assert await s3_storage.stored_chunks(older) == {0: 5 * MiB}  # only the head start is gone


async def test_another_process_completes_by_reading_every_chunk(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(3)]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2])
    await copies_made_ahead(s3_storage, upload_id)
    other = S3FileStorage(s3_client, s3_settings.bucket, key_prefix=s3_prefix)
    read = record_reads(other, monkeypatch)
    try:
        assert await other.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)
    finally:
        await other.close()

    assert read == [0, 1, 2]
    assert await read_all(s3_storage, upload_id) == whole
    # The first process's parts, copied ahead, are not left behind on the server.
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []
