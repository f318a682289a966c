"""Where upload bytes live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol
from uuid import UUID


class FileStorage(Protocol):
    """Where upload bytes live. Chunks are kept apart until the whole file's SHA-256 matches,
    so a failed checksum can be fixed by re-sending chunks instead of the whole file."""

    async def begin(self, upload_id: UUID) -> None: ...

    async def put_chunk(self, upload_id: UUID, index: int, data: bytes) -> None: ...

    async def stored_chunks(self, upload_id: UUID) -> dict[int, int]:
        """Chunk index -> stored size, including chunks PUT straight to storage."""
        ...

    async def assemble_if_matches(self, upload_id: UUID, total_chunks: int, checksum: str) -> str:
        """Hashes the stored chunks in order and, only if the SHA-256 equals `checksum`, writes them
        as the single stored file. Returns the SHA-256 it computed. Hashing and assembling read the
        same bytes, so a chunk replaced meanwhile cannot slip in.

        The chunks are kept (see `release_chunks`): until the database says the upload is completed,
        they are the only copy a retry can rely on.

        The first file stored stands, and is never replaced: it may already be recorded as completed
        with its checksum. Assembling again bytes with the same SHA-256 (a retry after the completion
        could not be recorded) keeps it and returns the checksum; assembling other bytes (chunks
        re-sent meanwhile) raises Conflict `upload_completed`. Deciding this and writing the file must
        be one step, or two completions racing could both find no file and the later one replace
        the earlier one's."""
        ...

    async def release_chunks(self, upload_id: UUID) -> None:
        """Drops the chunks of a completed upload; safe to call twice, or when they are gone."""
        ...

    async def file_exists(self, file_id: UUID) -> bool: ...

    async def discard(self, upload_id: UUID) -> None:
        """Deletes chunks and any partial object of an upload that will never complete."""
        ...

    def chunk_upload_url(self, upload_id: UUID, index: int, size: int) -> str | None:
        """A short-lived URL a client may PUT one chunk of exactly `size` bytes to, or None if chunks
        go through the API."""
        ...

    def download_url(self, file_id: UUID, filename: str) -> str | None:
        """A short-lived URL to fetch the file, or None if downloads go through the API."""
        ...

    def read_file(self, file_id: UUID, start: int = 0) -> AsyncIterator[bytes]:
        """The stored file's bytes from byte `start` (0-based) to its end."""
        ...

    async def check(self) -> None: ...
