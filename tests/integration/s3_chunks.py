"""Helpers for the S3FileStorage tests: chunks put, read back and watched on their way into the file."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any
from uuid import UUID

import pytest

from chat4all.adapters.storage.s3 import S3FileStorage
from chat4all.adapters.storage.s3_digest import RunningDigest

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
