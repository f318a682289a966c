"""Chunked uploads: initiate, send chunks in any order, complete with a verified SHA-256, expire."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from uuid import UUID

import attrs

from chat4all.application.downloads import ByteRange, Download, download_of
from chat4all.application.ports import Clock, FileStorage, IdGenerator, UnitOfWorkFactory
from chat4all.application.upload_access import NextChunk, load_upload, next_chunk, require_reader
from chat4all.domain.errors import Conflict, InvalidInput
from chat4all.domain.quotas import UserQuotas
from chat4all.domain.uploads import (
    Upload,
    UploadStatus,
    validate_checksum,
    validate_file_size,
    validate_filename,
)

log = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# type/subtype (RFC 6838 characters) and optional parameters in printable ASCII. The value is only
# stored and echoed back in JSON; downloads are always served as application/octet-stream.
CONTENT_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}( *;[\x20-\x7e]{0,120})?$")


@attrs.frozen
class UploadProgress:
    """An upload, and where its uploader sends the next chunk (None: nowhere, all are in)."""

    upload: Upload
    next_chunk: NextChunk | None


@attrs.frozen
class UploadView:
    """What a reader sees of an upload: the chunks still missing, where the uploader sends the next
    one, and, once completed, storage's own download URL when it hands one out."""

    upload: Upload
    missing_chunks: list[int]
    download_url: str | None
    next_chunk: NextChunk | None = None

    @property
    def downloadable(self) -> bool:
        return self.upload.status is UploadStatus.COMPLETED


@attrs.define
class InitiateUpload:
    """Opens an upload. Open uploads (pending, not expired) count against the owner's quotas, of
    uploads and of bytes announced; the count and the insert happen in one transaction under a lock
    on the owner's count, so concurrent requests cannot open more than the quotas allow."""

    uow: UnitOfWorkFactory
    storage: FileStorage
    ids: IdGenerator
    clock: Clock
    chunk_size: int
    lifetime: timedelta
    quotas: UserQuotas = attrs.field(factory=UserQuotas)

    async def execute(self, caller: UUID, filename: str, file_size: int, content_type: str | None) -> Upload:
        validate_filename(filename)
        validate_file_size(file_size)
        content_type = (content_type or DEFAULT_CONTENT_TYPE).strip()
        if not CONTENT_TYPE_PATTERN.fullmatch(content_type):
            raise InvalidInput("content_type must look like type/subtype", field_errors={"content_type": ["type/subtype"]})
        now = self.clock.now()
        upload = Upload(
            id=self.ids.new_id(),
            owner_id=caller,
            filename=filename,
            file_size=file_size,
            content_type=content_type,
            chunk_size=self.chunk_size,
            status=UploadStatus.PENDING,
            created_at=now,
            expires_at=now + self.lifetime,
        )
        async with self.uow() as uow:
            self.quotas.check_new_upload(await uow.uploads.open_for_owner(caller, now), file_size)
            await self.storage.begin(upload.id)
            await uow.uploads.add(upload)
            await uow.commit()
        return upload

    async def start(self, caller: UUID, filename: str, file_size: int, content_type: str | None) -> UploadProgress:
        """`execute`, saying where the first chunk goes."""
        upload = await self.execute(caller, filename, file_size, content_type)
        return UploadProgress(upload, next_chunk(self.storage, upload, caller))


@attrs.define
class UploadChunk:
    """Stores one chunk. Chunks are 0-based, may come in any order, and a re-sent chunk replaces the old one."""

    uow: UnitOfWorkFactory
    storage: FileStorage
    clock: Clock

    async def check(self, caller: UUID, upload_id: UUID, index: int) -> Upload:
        """Checks the caller may send this chunk now; `upload.layout.expected_size(index)` is how many
        bytes it must have. Passing the result to `execute` saves loading the upload twice."""
        upload = await load_upload(self.uow, upload_id)
        upload.require_owner(caller)
        upload.require_open(self.clock.now())
        upload.layout.expected_size(index)
        return upload

    async def expected_size(self, caller: UUID, upload_id: UUID, index: int) -> int:
        """Checks the caller may send this chunk now and says how many bytes it must have."""
        upload = await self.check(caller, upload_id, index)
        return upload.layout.expected_size(index)

    async def receive(
        self, caller: UUID, upload_id: UUID, index: int, read: Callable[[int], Awaitable[bytes]]
    ) -> UploadProgress:
        """Checks the chunk may be sent, then reads its bytes with `read(expected_size)` (which
        refuses a body longer than that), stores them and says where the next chunk goes."""
        checked = await self.check(caller, upload_id, index)
        data = await read(checked.layout.expected_size(index))
        upload = await self.execute(caller, upload_id, index, data, checked=checked)
        return UploadProgress(upload, next_chunk(self.storage, upload, caller, after=index))

    async def execute(
        self, caller: UUID, upload_id: UUID, index: int, data: bytes, *, checked: Upload | None = None
    ) -> Upload:
        """`checked` is the upload `check` returned for this request, if any; it is checked again
        (owner, deadline, chunk size) but not reloaded. Whether the upload is still open is decided
        under the row lock after the bytes are stored."""
        upload = checked if checked is not None and checked.id == upload_id else await load_upload(self.uow, upload_id)
        upload.require_owner(caller)
        upload.require_open(self.clock.now())
        upload.check_chunk(index, len(data))
        await self.storage.put_chunk(upload_id, index, data)
        log.debug("upload %s: chunk %d stored (%d bytes)", upload_id, index, len(data))
        async with self.uow() as uow:
            upload = await uow.uploads.get(upload_id, for_update=True)
            assert upload is not None
            upload.require_open(self.clock.now())
            if index not in upload.received_chunks:
                upload.record_chunk(index)
                await uow.uploads.add_chunk(upload_id, index)
                await uow.commit()
        return upload


@attrs.define
class CompleteUpload:
    """Verifies the whole file's SHA-256 from the stored bytes; only a match makes the file usable.

    A mismatch leaves the upload open so the client can re-send the bad chunks and try again.

    Storage keeps the chunks until the database says the upload is completed, and only then are
    they released: if the commit fails after the file was assembled, a retry assembles it again
    from the same chunks instead of finding them gone.
    """

    uow: UnitOfWorkFactory
    storage: FileStorage
    clock: Clock

    async def execute(self, caller: UUID, upload_id: UUID, checksum: str) -> Upload:
        checksum = validate_checksum(checksum)
        upload = await load_upload(self.uow, upload_id)
        upload.require_owner(caller)
        await self._require_open(upload)
        stored = await self.storage.stored_chunks(upload_id)
        problems = [
            index for index in range(upload.total_chunks) if stored.get(index) != upload.layout.expected_size(index)
        ]
        if problems:
            # A concurrent completion may have been recorded, and its chunks released, since the load.
            await self._require_open(await load_upload(self.uow, upload_id))
            raise InvalidInput(
                f"chunks missing or incomplete: {_ranges(problems)}",
                code="missing_chunks",
                field_errors={"missing_chunks": [str(index) for index in problems[:1000]]},
            )
        actual = await self.storage.assemble_if_matches(upload_id, upload.total_chunks, checksum)
        if actual != checksum:
            raise InvalidInput(
                "checksum_mismatch: the stored bytes hash to a different SHA-256; re-send the damaged chunks and complete again",
                code="checksum_mismatch",
                field_errors={"checksum": [f"stored bytes hash to {actual}"]},
            )
        async with self.uow() as uow:
            current = await uow.uploads.get(upload_id, for_update=True)
            assert current is not None
            if current.status is not UploadStatus.COMPLETED:
                current.received_chunks = set(range(current.total_chunks))
                current.complete(checksum, self.clock.now())
                await uow.uploads.update(current)
                await uow.commit()
                completed_here = True
            else:
                completed_here = False
        # Outside the transaction, so the row lock is not held while storage deletes.
        await self._release(upload_id)
        if not completed_here:
            raise Conflict("this upload is already completed", code="upload_completed")
        return current

    async def _require_open(self, upload: Upload) -> None:
        """`upload.require_open`, releasing the chunks first if the upload turns out completed: a
        completion whose commit went through but whose release never ran (process stopped, answer
        lost) leaves them behind, and its client's retry comes here."""
        if upload.status is UploadStatus.COMPLETED:
            await self._release(upload.id)
        upload.require_open(self.clock.now())

    async def _release(self, upload_id: UUID) -> None:
        # Never fails the request: the file is complete and recorded, and chunks left behind only
        # take space (a later complete of the same upload tries again).
        try:
            await self.storage.release_chunks(upload_id)
        except Exception:
            log.warning("upload %s is completed but its chunks could not be released", upload_id, exc_info=True)


@attrs.define
class ViewUpload:
    uow: UnitOfWorkFactory
    storage: FileStorage
    clock: Clock

    async def execute(self, caller: UUID, upload_id: UUID) -> UploadView:
        upload = await load_upload(self.uow, upload_id)
        await require_reader(self.uow, upload, caller)
        if upload.status is not UploadStatus.COMPLETED:
            upload.require_open(self.clock.now())
            stored = await self.storage.stored_chunks(upload_id)
            upload.received_chunks = {
                index for index, size in stored.items() if index < upload.total_chunks and size == upload.layout.expected_size(index)
            }
        url = self.storage.download_url(upload.id, upload.filename) if upload.status is UploadStatus.COMPLETED else None
        missing = upload.missing_chunks() if upload.status is UploadStatus.PENDING else []
        return UploadView(upload, missing, url, next_chunk(self.storage, upload, caller))

    async def readable(self, caller: UUID, upload_id: UUID) -> Upload:
        view = await self.execute(caller, upload_id)
        if view.upload.status is not UploadStatus.COMPLETED:
            raise Conflict("the file is not completed yet", code="file_not_completed")
        return view.upload

    async def download(self, caller: UUID, upload_id: UUID, wanted: ByteRange | None = None) -> Download:
        """The completed file, or the part of it `wanted`, for those who may see it (see `readable`)."""
        return download_of(self.storage, await self.readable(caller, upload_id), wanted)


@attrs.define
class ExpireUploads:
    uow: UnitOfWorkFactory
    storage: FileStorage
    clock: Clock

    async def execute(self, batch: int = 100) -> int:
        async with self.uow() as uow:
            stale = await uow.uploads.expired_before(self.clock.now(), batch)
        for upload in stale:
            await self.storage.discard(upload.id)
            async with self.uow() as uow:
                current = await uow.uploads.get(upload.id, for_update=True)
                if current is not None and current.status is UploadStatus.PENDING:
                    current.expire()
                    await uow.uploads.update(current)
                    await uow.commit()
        return len(stale)


def _ranges(indices: list[int]) -> str:
    parts: list[str] = []
    start = previous = indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ", ".join(parts)
