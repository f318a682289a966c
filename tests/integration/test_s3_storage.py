"""S3FileStorage against a real S3 server (Versity S3 Gateway from scripts/services.sh)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import attrs
import httpx
import pytest

from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions, make_s3_client
from chat4all.adapters.storage.s3_digest import RunningDigest
from chat4all.adapters.storage.s3_running import COPY_AHEAD_CONCURRENCY
from chat4all.domain.errors import Conflict, NotFound, Unavailable
from chat4all.domain.uploads import attachment_disposition
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

MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def put_all(storage: S3FileStorage, upload_id: UUID, chunks: list[bytes], order: list[int]) -> None:
    for index in order:
        await storage.put_chunk(upload_id, index, chunks[index])


async def read_all(storage: S3FileStorage, file_id: UUID) -> bytes:
    return b"".join([block async for block in storage.read_file(file_id)])


def put_behind_the_api(client: Any, bucket: str, storage: S3FileStorage, upload_id: UUID, index: int, data: bytes) -> None:
    """Stores a chunk the way a presigned URL or another API process would: straight to S3."""
    client.put_object(Bucket=bucket, Key=storage.chunk_key(upload_id, index), Body=data)


def three_chunks() -> list[bytes]:
    return [os.urandom(8 * MiB), os.urandom(8 * MiB), os.urandom(1 * MiB)]


async def test_chunks_sent_out_of_order_are_joined_with_part_copies(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str
) -> None:
    upload_id = uuid4()
    chunks = three_chunks()
    whole = b"".join(chunks)
    await s3_storage.begin(upload_id)
    await put_all(s3_storage, upload_id, chunks, [2, 0, 1])

    assert await s3_storage.stored_chunks(upload_id) == {0: 8 * MiB, 1: 8 * MiB, 2: 1 * MiB}
    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)

    assert object_bytes(s3_client, s3_settings.bucket, s3_storage.file_key(upload_id)) == whole
    assert await read_all(s3_storage, upload_id) == whole
    assert await s3_storage.file_exists(upload_id)
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []
    # Kept until the completion is recorded and releases them, so a failed commit can be retried.
    assert await s3_storage.stored_chunks(upload_id) == {0: 8 * MiB, 1: 8 * MiB, 2: 1 * MiB}

    await s3_storage.release_chunks(upload_id)

    assert await s3_storage.stored_chunks(upload_id) == {}
    assert await read_all(s3_storage, upload_id) == whole


async def test_a_mismatch_keeps_the_chunks_until_the_bad_one_is_resent(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str
) -> None:
    upload_id = uuid4()
    chunks = three_chunks()
    whole = b"".join(chunks)
    damaged = bytearray(chunks[1])
    damaged[12345] ^= 0xFF
    await put_all(s3_storage, upload_id, [chunks[0], bytes(damaged), chunks[2]], [0, 1, 2])

    actual = await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole))

    assert actual == sha256(chunks[0] + bytes(damaged) + chunks[2])
    assert await s3_storage.stored_chunks(upload_id) == {0: 8 * MiB, 1: 8 * MiB, 2: 1 * MiB}
    assert not await s3_storage.file_exists(upload_id)
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []

    await s3_storage.put_chunk(upload_id, 1, chunks[1])
    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)
    assert await read_all(s3_storage, upload_id) == whole


async def test_a_chunk_put_to_a_presigned_url_is_seen_and_assembled(s3_storage: S3FileStorage) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(777)]
    await put_all(s3_storage, upload_id, chunks, [0, 2])
    url = s3_storage.chunk_upload_url(upload_id, 1, 5 * MiB)
    assert url is not None

    async with httpx.AsyncClient(timeout=30) as http:
        for wrong_size in (b"", b"x" * 1000):  # the signed Content-Length holds
            assert (await http.put(url, content=wrong_size)).status_code == 403
        response = await http.put(url, content=chunks[1])
    assert response.status_code == 200, response.text

    assert await s3_storage.stored_chunks(upload_id) == {0: 5 * MiB, 1: 5 * MiB, 2: 777}
    whole = b"".join(chunks)
    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)
    assert await read_all(s3_storage, upload_id) == whole


async def test_a_presigned_url_refuses_a_different_key(s3_storage: S3FileStorage) -> None:
    url = s3_storage.chunk_upload_url(uuid4(), 0, 1)
    assert url is not None
    tampered = url.replace("/chunks/00000?", "/chunks/00001?")

    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.put(tampered, content=b"x")

    assert response.status_code == 403


async def test_a_presigned_download_returns_the_bytes_as_an_attachment(s3_storage: S3FileStorage) -> None:
    upload_id = uuid4()
    data = os.urandom(3 * MiB + 5)
    await s3_storage.put_chunk(upload_id, 0, data)
    assert await s3_storage.assemble_if_matches(upload_id, 1, sha256(data)) == sha256(data)
    filename = 'résumé "final" 100%.pdf'

    url = s3_storage.download_url(upload_id, filename)
    assert url is not None
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url)

    assert response.status_code == 200
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert disposition == attachment_disposition(filename)
    assert disposition.startswith('attachment; filename="r_sum_ _final_ 100_.pdf"; ')
    assert disposition.endswith("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%20100%25.pdf")


async def test_urls_are_signed_for_the_public_endpoint(s3_client: Any, s3_settings: S3StorageOptions) -> None:
    public = attrs.evolve(s3_settings, presign_endpoint="https://files.example.test:8443")
    storage = S3FileStorage.from_options(public)
    try:
        upload_url = storage.chunk_upload_url(uuid4(), 3, 5 * MiB)
        download_url = storage.download_url(uuid4(), "a.txt")
    finally:
        await storage.close()

    for url, signed in ((upload_url, "content-length%3Bhost"), (download_url, "host")):
        assert url is not None
        assert urlsplit(url).netloc == "files.example.test:8443"
        assert "X-Amz-Expires=900" in url
        assert f"X-Amz-SignedHeaders={signed}&" in url


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


async def test_a_chunk_replaced_after_hashing_fails_the_assembly(
    s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without copies made ahead, every part is copied while completing, right after the listing.
    s3_storage = S3FileStorage(s3_client, s3_settings.bucket, key_prefix=s3_prefix, copy_ahead=False)
    upload_id = uuid4()
    chunks = three_chunks()
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, [0, 1, 2])
    intruder = os.urandom(8 * MiB)
    copy_part = s3_storage._bucket.copy_part
    replaced = False

    async def replace_then_copy(*args: Any) -> Any:
        nonlocal replaced
        if not replaced:
            replaced = True
            put_behind_the_api(s3_client, s3_settings.bucket, s3_storage, upload_id, 1, intruder)
        return await copy_part(*args)

    monkeypatch.setattr(s3_storage._bucket, "copy_part", replace_then_copy)

    with pytest.raises(Conflict) as failure:
        await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole))

    assert failure.value.code == "chunk_changed"
    assert not await s3_storage.file_exists(upload_id)
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []
    assert await s3_storage.stored_chunks(upload_id) == {0: 8 * MiB, 1: 8 * MiB, 2: 1 * MiB}

    monkeypatch.undo()
    assert await s3_storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(chunks[0] + intruder + chunks[2])
    assert not await s3_storage.file_exists(upload_id)
    await s3_storage.close()


def record_reads(storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The chunk indices completing reads back from S3, in order."""
    read: list[int] = []
    open_soon = storage._assembler.open_soon

    def recording(key: str) -> Any:
        read.append(int(key.rsplit("/", 1)[1]))
        return open_soon(key)

    monkeypatch.setattr(storage._assembler, "open_soon", recording)
    return read


def running_digest(storage: S3FileStorage, upload_id: UUID) -> RunningDigest:
    running = storage._running.get(upload_id)
    assert running is not None, "this process does not track the upload"
    return running


async def copies_made_ahead(storage: S3FileStorage, upload_id: UUID) -> None:
    """Waits until the parts this storage started copying while chunks arrived are copied."""
    running = running_digest(storage, upload_id)
    assert running.ahead is not None
    await asyncio.gather(*(part.copy for part in running.ahead.parts.values()))


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


async def test_a_mismatch_found_while_copying_leaves_no_partial_object(
    s3_storage: S3FileStorage, s3_client: Any, s3_settings: S3StorageOptions, s3_prefix: str
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(5 * MiB) for _ in range(6)]
    other = S3FileStorage(s3_client, s3_settings.bucket, key_prefix=s3_prefix, copy_concurrency=2)
    try:
        await put_all(other, upload_id, chunks, [5, 4, 3, 2, 1, 0])  # nothing hashed ahead: all read back
        wrong = sha256(b"something else")

        assert await other.assemble_if_matches(upload_id, 6, wrong) == sha256(b"".join(chunks))
    finally:
        await other.close()

    assert not await s3_storage.file_exists(upload_id)
    assert multipart_uploads(s3_client, s3_settings.bucket, s3_prefix) == []
    assert await s3_storage.stored_chunks(upload_id) == {index: 5 * MiB for index in range(6)}


async def test_chunks_below_the_part_minimum_are_joined_by_upload(s3_storage: S3FileStorage) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(1 * MiB) for _ in range(12)] + [b"tail"]
    whole = b"".join(chunks)
    await put_all(s3_storage, upload_id, chunks, list(reversed(range(len(chunks)))))

    assert await s3_storage.assemble_if_matches(upload_id, len(chunks), sha256(whole)) == sha256(whole)

    assert await read_all(s3_storage, upload_id) == whole
    await s3_storage.release_chunks(upload_id)
    assert await s3_storage.stored_chunks(upload_id) == {}


async def test_a_small_chunk_replaced_after_hashing_fails_the_assembly(
    s3_storage: S3FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [b"a" * 1000, b"b" * 1000]
    await put_all(s3_storage, upload_id, chunks, [0, 1])
    hash_chunks = s3_storage._assembler.hash_chunks

    async def hash_then_replace(*args: Any) -> Any:
        result = await hash_chunks(*args)
        await s3_storage.put_chunk(upload_id, 0, b"c" * 1000)
        return result

    monkeypatch.setattr(s3_storage._assembler, "hash_chunks", hash_then_replace)

    with pytest.raises(Conflict) as failure:
        await s3_storage.assemble_if_matches(upload_id, 2, sha256(b"".join(chunks)))

    assert failure.value.code == "chunk_changed"
    assert not await s3_storage.file_exists(upload_id)


async def test_a_single_small_chunk_becomes_the_file(s3_storage: S3FileStorage) -> None:
    upload_id = uuid4()
    await s3_storage.put_chunk(upload_id, 0, b"tiny")

    assert await s3_storage.assemble_if_matches(upload_id, 1, sha256(b"tiny")) == sha256(b"tiny")
    assert await read_all(s3_storage, upload_id) == b"tiny"


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
