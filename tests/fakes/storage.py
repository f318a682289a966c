from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from uuid import UUID

from chat4all.domain.errors import Conflict, InvalidInput, NotFound
from chat4all.domain.uploads import stored_file_differs

READ_BLOCK = 64 * 1024


class InMemoryFileStorage:
    """Chunks per upload until the completed upload releases them; files once the SHA-256 matches.
    The first file stored for an upload stands, as with the other storages."""

    def __init__(self) -> None:
        self.chunks: dict[UUID, dict[int, bytes]] = {}
        self.files: dict[UUID, bytes] = {}

    async def begin(self, upload_id: UUID) -> None:
        self.chunks.setdefault(upload_id, {})

    async def put_chunk(self, upload_id: UUID, index: int, data: bytes) -> None:
        self.chunks.setdefault(upload_id, {})[index] = bytes(data)

    async def stored_chunks(self, upload_id: UUID) -> dict[int, int]:
        return {index: len(data) for index, data in self.chunks.get(upload_id, {}).items()}

    async def assemble_if_matches(self, upload_id: UUID, total_chunks: int, checksum: str) -> str:
        stored = self.chunks.get(upload_id, {})
        missing = [index for index in range(total_chunks) if index not in stored]
        if missing and upload_id in self.files:
            raise Conflict("this upload is already completed", code="upload_completed")
        if missing:
            raise InvalidInput(f"chunk {missing[0]} is missing", code="missing_chunks")
        parts = [stored[index] for index in range(total_chunks)]
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        actual = digest.hexdigest()
        if actual != checksum.strip().lower():
            return actual
        stored = self.files.setdefault(upload_id, b"".join(parts))
        if hashlib.sha256(stored).hexdigest() != actual:
            raise stored_file_differs()
        return actual

    async def release_chunks(self, upload_id: UUID) -> None:
        self.chunks.pop(upload_id, None)

    async def file_exists(self, file_id: UUID) -> bool:
        return file_id in self.files

    async def discard(self, upload_id: UUID) -> None:
        self.chunks.pop(upload_id, None)

    def chunk_upload_url(self, upload_id: UUID, index: int, size: int) -> str | None:
        return None

    def download_url(self, file_id: UUID, filename: str) -> str | None:
        return None

    async def read_file(self, file_id: UUID, start: int = 0) -> AsyncIterator[bytes]:
        if file_id not in self.files:
            raise NotFound("no such file", code="file_not_found")
        data = self.files[file_id]
        for offset in range(start, len(data), READ_BLOCK):
            yield data[offset : offset + READ_BLOCK]

    async def check(self) -> None:
        return None
