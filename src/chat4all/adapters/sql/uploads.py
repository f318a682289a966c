from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from uuid import UUID

from sqlalchemy import Row, exc, func, insert, select, update

from chat4all.adapters.sql.base import SqlRepository
from chat4all.adapters.sql.errors import is_unique_violation
from chat4all.adapters.sql.tables import upload_chunks, uploads
from chat4all.application.errors import DuplicateKey
from chat4all.domain.quotas import OpenUploads
from chat4all.domain.uploads import Upload, UploadStatus


def _upload(row: Row, chunks: set[int]) -> Upload:
    return Upload(
        id=row.id,
        owner_id=row.owner_id,
        filename=row.filename,
        file_size=row.file_size,
        content_type=row.content_type,
        chunk_size=row.chunk_size,
        status=UploadStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        received_chunks=chunks,
        checksum=row.checksum,
        completed_at=row.completed_at,
    )


class SqlUploadRepository(SqlRepository):
    async def add(self, upload: Upload) -> None:
        try:
            await self._execute(
                insert(uploads).values(
                    id=upload.id,
                    owner_id=upload.owner_id,
                    filename=upload.filename,
                    file_size=upload.file_size,
                    content_type=upload.content_type,
                    chunk_size=upload.chunk_size,
                    status=upload.status.value,
                    checksum=upload.checksum,
                    created_at=upload.created_at,
                    expires_at=upload.expires_at,
                    completed_at=upload.completed_at,
                )
            )
        except exc.IntegrityError as error:
            if is_unique_violation(error):
                raise DuplicateKey(f"upload {upload.id} already exists") from error
            raise
        await self._store_chunks(upload.id, upload.received_chunks)

    async def get(self, upload_id: UUID, *, for_update: bool = False) -> Upload | None:
        query = select(uploads).where(uploads.c.id == upload_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._execute(query)).first()
        if row is None:
            return None
        chunks = await self._chunks_of([upload_id])
        return _upload(row, chunks[upload_id])

    async def update(self, upload: Upload) -> None:
        """Writes status, checksum and completion time, and records any newly received chunks."""
        await self._execute(
            update(uploads)
            .where(uploads.c.id == upload.id)
            .values(status=upload.status.value, checksum=upload.checksum, completed_at=upload.completed_at)
        )
        stored = (await self._chunks_of([upload.id]))[upload.id]
        await self._store_chunks(upload.id, upload.received_chunks - stored)

    async def add_chunk(self, upload_id: UUID, index: int) -> None:
        await self._execute(self._insert_ignoring_duplicates(upload_chunks).values(upload_id=upload_id, chunk_index=index))

    async def expired_before(self, now: datetime, limit: int) -> list[Upload]:
        """Pending uploads whose deadline has passed, oldest deadline first."""
        rows = (
            await self._execute(
                select(uploads)
                .where(uploads.c.status == UploadStatus.PENDING.value, uploads.c.expires_at <= now)
                .order_by(uploads.c.expires_at, uploads.c.id)
                .limit(limit)
            )
        ).all()
        chunks = await self._chunks_of([row.id for row in rows])
        return [_upload(row, chunks[row.id]) for row in rows]

    async def open_for_owner(self, owner_id: UUID, now: datetime) -> OpenUploads:
        await self._lock_until_commit(f"quota:uploads:{owner_id}")
        count, reserved = (
            await self._execute(
                select(func.count(), func.coalesce(func.sum(uploads.c.file_size), 0)).where(
                    uploads.c.owner_id == owner_id,
                    uploads.c.status == UploadStatus.PENDING.value,
                    uploads.c.expires_at > now,
                )
            )
        ).one()
        return OpenUploads(int(count), int(reserved))

    async def _store_chunks(self, upload_id: UUID, indices: set[int]) -> None:
        if indices:
            await self._execute(
                self._insert_ignoring_duplicates(upload_chunks),
                [{"upload_id": upload_id, "chunk_index": index} for index in sorted(indices)],
            )

    async def _chunks_of(self, upload_ids: list[UUID]) -> dict[UUID, set[int]]:
        found: dict[UUID, set[int]] = defaultdict(set)
        if upload_ids:
            rows = await self._execute(
                select(upload_chunks.c.upload_id, upload_chunks.c.chunk_index).where(upload_chunks.c.upload_id.in_(upload_ids))
            )
            for upload_id, index in rows:
                found[upload_id].add(index)
        return found
