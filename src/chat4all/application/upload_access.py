"""Who may do what with an upload, and where its uploader sends the next chunk: the rules every
upload use case (and sending a file message) applies, each stated once.

- Only the uploader sends chunks and completes the upload (`Upload.require_owner`).
- The uploader, and members of conversations the file was sent into, may see it and download it
  (and send it on).
- The next chunk is the first one still missing after the chunk just sent (or from the start),
  offered to the uploader only, while the upload is pending: at storage's own short-lived URL when
  storage takes chunks directly, else through the API."""

from __future__ import annotations

from uuid import UUID

import attrs

from chat4all.application.ports import FileStorage, UnitOfWork, UnitOfWorkFactory
from chat4all.domain.errors import Forbidden, NotFound
from chat4all.domain.uploads import Upload, UploadStatus


async def load_upload(uow_factory: UnitOfWorkFactory, upload_id: UUID) -> Upload:
    async with uow_factory() as uow:
        upload = await uow.uploads.get(upload_id)
    if upload is None:
        raise NotFound("no such file", code="file_not_found")
    return upload


async def may_read(uow: UnitOfWork, upload: Upload, caller: UUID) -> bool:
    return upload.owner_id == caller or await uow.conversations.shares_file(upload.id, caller)


async def require_reader(uow_factory: UnitOfWorkFactory, upload: Upload, caller: UUID) -> None:
    if upload.owner_id == caller:
        return
    async with uow_factory() as uow:
        shared = await uow.conversations.shares_file(upload.id, caller)
    if not shared:
        raise Forbidden("only the uploader and members of conversations it was sent to may see this file", code="file_forbidden")


@attrs.frozen
class NextChunk:
    """Where the uploader sends chunk `index` next: `direct_url` when storage takes it itself, else
    None (send it through the API)."""

    upload_id: UUID
    index: int
    direct_url: str | None


def next_chunk(storage: FileStorage, upload: Upload, caller: UUID, after: int = -1) -> NextChunk | None:
    if caller != upload.owner_id or upload.status is not UploadStatus.PENDING:
        return None
    index = upload.next_missing_chunk(after=after)
    if index is None:
        return None
    return NextChunk(upload.id, index, storage.chunk_upload_url(upload.id, index, upload.layout.expected_size(index)))
