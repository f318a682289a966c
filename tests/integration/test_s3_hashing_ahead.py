"""S3FileStorage hashes chunks in order as they arrive, against a real S3 server, so completing reads
back only what it has not seen or what changed behind its back."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions
from tests.integration.s3_chunks import MiB, put_all, put_behind_the_api, read_all, record_reads, running_digest, sha256
from tests.integration.s3_fixtures import (  # noqa: F401 - fixtures
    multipart_uploads,
    object_bytes,
    s3_client,
    s3_prefix,
    s3_settings,
    s3_storage,
)

pytestmark = pytest.mark.services


async def test_chunks_stored_in_order_are_not_read_back(s3_storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(4)] + [os.urandom(1000)]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2, 3, 4])
    await s3_storage.put_chunk(upload_id, 2, chunks[2])  # re-sent with the same bytes
    read = record_reads(s3_storage, monkeypatch)

    assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)

    assert read == []
    assert await read_all(s3_storage, upload_id) == whole


async def test_concurrent_chunks_are_hashed_in_order(s3_storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(6)] + [os.urandom(3)]
    whole = b"".join(chunks)
    await asyncio.gather(*(s3_storage.put_chunk(upload_id, index, chunk) for index, chunk in enumerate(chunks)))
    read = record_reads(s3_storage, monkeypatch)

    assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)

    assert await read_all(s3_storage, upload_id) == whole
    assert read == list(range(len(chunks) - len(read), len(chunks)))  # at most a tail is read back


async def chain_reaches(storage: S3FileStorage, upload_id: UUID, count: int) -> None:
    """Waits until the chunks hashed in order here cover `count` chunks (background catch-up included)."""
    running = running_digest(storage, upload_id)
    for _ in range(200):
        if running.next >= count and not running.catching_up:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"hashed {running.next} of {count} chunks")


async def test_chunks_sent_ahead_of_a_gap_are_hashed_once_it_is_filled(
    s3_storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(4)] + [os.urandom(10)]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, [0, 1, 3, 4, 2])
    # 3 and 4 came before 2: they are read back from S3 in the background once 2 is hashed.
    await chain_reaches(s3_storage, upload_id, 5)
    read = record_reads(s3_storage, monkeypatch)

    assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)

    assert read == []
    assert await read_all(s3_storage, upload_id) == whole


async def test_chunks_put_to_presigned_urls_are_hashed_once_listed(
    s3_storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(3)] + [os.urandom(10)]
    whole = b"".join(chunks)
    async with httpx.AsyncClient(timeout=30) as http:
        for index, chunk in enumerate(chunks):
            url = s3_storage.chunk_upload_url(upload_id, index, len(chunk))
            assert url is not None
            assert (await http.put(url, content=chunk)).status_code == 200
            # What a client does between chunks: ask which are stored, for the next URL.
            assert index in await s3_storage.stored_chunks(upload_id)
    await chain_reaches(s3_storage, upload_id, len(chunks))
    read = record_reads(s3_storage, monkeypatch)

    assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)

    assert read == []
    assert await read_all(s3_storage, upload_id) == whole


async def test_a_chunk_replaced_before_the_chain_reached_it_is_read_back_when_completing(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(4)]
    await put_all(s3_storage, upload_id, chunks, [0, 2, 3])
    chunks[2] = os.urandom(5 * MiB)
    put_behind_the_api(s3_client, s3_settings.bucket, s3_storage, upload_id, 2, chunks[2])
    await s3_storage.put_chunk(upload_id, 1, chunks[1])
    running = running_digest(s3_storage, upload_id)
    for _ in range(200):
        if not running.catching_up:
            break
        await asyncio.sleep(0.05)
    assert running.next == 2  # the catch-up refused the replaced chunk instead of hashing other bytes
    read = record_reads(s3_storage, monkeypatch)
    whole = b"".join(chunks)

    assert await s3_storage.assemble_if_matches(upload_id, 4, sha256(whole)) == sha256(whole)

    assert read == [2, 3]
    assert await read_all(s3_storage, upload_id) == whole


async def test_a_hashed_chunk_replaced_behind_the_api_is_hashed_again(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(3)] + [os.urandom(10)]
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2, 3])
    # Same size, other bytes, PUT the way a presigned URL or another API process would.
    other = os.urandom(5 * MiB)
    put_behind_the_api(s3_client, s3_settings.bucket, s3_storage, upload_id, 1, other)
    read = record_reads(s3_storage, monkeypatch)
    stored = chunks[0] + other + chunks[2] + chunks[3]

    assert await s3_storage.assemble_if_matches(upload_id, 4, sha256(b"".join(chunks))) == sha256(stored)
    assert not await s3_storage.file_exists(upload_id)
    assert read == [1, 2, 3]

    assert await s3_storage.assemble_if_matches(upload_id, 4, sha256(stored)) == sha256(stored)
    assert await read_all(s3_storage, upload_id) == stored


async def test_a_resent_chunk_with_other_bytes_is_hashed_again(
    s3_storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(3)]
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2])
    chunks[2] = os.urandom(5 * MiB)
    await s3_storage.put_chunk(upload_id, 2, chunks[2])
    read = record_reads(s3_storage, monkeypatch)
    whole = b"".join(chunks)

    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)

    assert read == [2]
    assert await read_all(s3_storage, upload_id) == whole
