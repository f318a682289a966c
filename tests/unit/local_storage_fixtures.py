"""What the LocalFileStorage tests share: the storage under test and helpers to hash and read."""

from __future__ import annotations

import hashlib
from pathlib import Path
from uuid import UUID

import pytest

from chat4all.adapters.storage.local import LocalFileStorage

MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def read_all(storage: LocalFileStorage, file_id: UUID) -> bytes:
    return b"".join([block async for block in storage.read_file(file_id)])


def leftovers(base: Path) -> list[Path]:
    return [path for path in base.rglob("*") if path.is_file()]


@pytest.fixture
def storage(tmp_path: Path) -> LocalFileStorage:
    return LocalFileStorage(tmp_path)
