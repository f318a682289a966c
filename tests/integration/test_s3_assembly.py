"""S3FileStorage joins the chunks into the file, against a real S3 server (Versity S3 Gateway from
scripts/services.sh): part copies for large chunks, an upload for small ones, and a checksum that holds."""

from __future__ import annotations

import os
from typing import Any
from uuid import uuid4

import pytest

from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions
from chat4all.domain.errors import Conflict
from tests.integration.s3_chunks import MiB, put_all, put_behind_the_api, read_all, sha256
from tests.integration.s3_fixtures import (  # noqa: F401 - fixtures
    multipart_uploads,
    object_bytes,
    s3_client,
    s3_prefix,
    s3_settings,
    s3_storage,
)

pytestmark = pytest.mark.services


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
