from __future__ import annotations

from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from chat4all.domain.errors import InvalidInput
from chat4all.domain.uploads import Upload, UploadStatus
from chat4all.entrypoints.http import schemas, views
from chat4all.entrypoints.http.dependencies import HubDep, UserDep, provide_user
from chat4all.entrypoints.http.openapi_docs import BEARER, ChunkUploadOperation, errors

ChunkIndex = Annotated[int, QueryParameter(ge=0, le=2**31 - 1, description="0-based chunk number")]
# The largest chunk size the settings allow, plus room for multipart framing.
MAX_CHUNK_REQUEST = 64 * 1024 * 1024 + 64 * 1024


def _base_url(request: Request, hub: HubDep) -> str:
    return hub.settings.public_url or str(request.base_url).rstrip("/")


def chunk_url(request: Request, hub: HubDep, upload: Upload, index: int | None) -> str | None:
    if index is None:
        return None
    direct = hub.adapters.storage.chunk_upload_url(upload.id, index, upload.layout.expected_size(index))
    return direct or f"{_base_url(request, hub)}/v1/files/upload?file_id={upload.id}&chunk_id={index}"


def _too_long(expected: int) -> InvalidInput:
    return InvalidInput(
        f"chunk must be exactly {expected} bytes; more were sent",
        code="invalid_chunk_size",
        field_errors={"body": [f"exactly {expected} bytes"]},
    )


async def read_chunk(request: Request, expected: int) -> bytes | bytearray:
    """Reads at most one chunk's bytes, refusing the request as soon as it runs past that.

    A raw body is copied once, block by block, into a buffer of the expected size (no regrowing,
    no final copy); the buffer is handed on as is."""
    if request.content_type[0] == "multipart/form-data":
        form = await request.form()
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InvalidInput("multipart body needs a file field named 'file'", field_errors={"file": ["required"]})
        data = await part.read(expected + 1)
        await part.close()
        if len(data) > expected:
            raise _too_long(expected)
        return data
    received = bytearray(expected)
    filled = 0
    with memoryview(received) as view:
        async for block in request.stream():
            end = filled + len(block)
            if end > expected:
                raise _too_long(expected)
            view[filled:end] = block
            filled = end
    if filled < expected:
        del received[filled:]
    return received


class FileController(Controller):
    path = "/v1/files"
    tags = ["files"]
    security = BEARER
    dependencies = {"user": Provide(provide_user)}

    @post(
        "/initiate",
        status_code=HTTP_201_CREATED,
        summary="Start a chunked upload (up to 2 GiB)",
        description="Each user may have a limited number of uploads open, announcing a limited number of bytes (429).",
        responses=errors(400, 401, 413, 429),
    )
    async def initiate(self, data: JSONBody[schemas.FileInitiate], request: Request, user: UserDep, hub: HubDep) -> schemas.FileInitiated:
        upload = await hub.initiate_upload.execute(user.id, data.filename, data.file_size, data.content_type)
        return schemas.FileInitiated(
            file_id=upload.id,
            chunk_size=upload.chunk_size,
            total_chunks=upload.total_chunks,
            upload_url=chunk_url(request, hub, upload, 0) or "",
            expires_at=upload.expires_at,
        )

    @patch(
        "/upload",
        request_max_body_size=MAX_CHUNK_REQUEST,
        summary="Send one chunk (raw application/octet-stream body, or multipart field 'file')",
        description="Chunks are 0-based, may arrive in any order, and must be exactly chunk_size bytes except the "
        "last. Re-sending a chunk replaces it. Only the uploader may send chunks.",
        operation_class=ChunkUploadOperation,
        responses=errors(400, 401, 403, 404, 409, 410, 413),
    )
    async def upload_chunk(
        self, request: Request, user: UserDep, hub: HubDep, file_id: FromQuery[UUID], chunk_id: ChunkIndex
    ) -> schemas.ChunkReceived:
        checked = await hub.upload_chunk.check(user.id, file_id, chunk_id)
        data = await read_chunk(request, checked.layout.expected_size(chunk_id))
        upload = await hub.upload_chunk.execute(user.id, file_id, chunk_id, data, checked=checked)
        return schemas.ChunkReceived(
            file_id=upload.id,
            chunk_id=chunk_id,
            received_chunks=len(upload.received_chunks),
            total_chunks=upload.total_chunks,
            next_upload_url=chunk_url(request, hub, upload, upload.next_missing_chunk(after=chunk_id)),
        )

    @post(
        "/complete",
        status_code=HTTP_200_OK,
        summary="Verify the whole file's SHA-256 and make it sendable (uploader only)",
        responses=errors(400, 401, 403, 404, 409, 410, 413),
    )
    async def complete(self, data: JSONBody[schemas.FileComplete], user: UserDep, hub: HubDep) -> schemas.FileCompleted:
        upload = await hub.complete_upload.execute(user.id, data.file_id, data.checksum)
        return schemas.FileCompleted(upload.id, upload.status.value, upload.filename, upload.file_size, upload.checksum or "")

    @get(
        "/{file_id:uuid}",
        summary="Upload status, missing chunks (to resume) and, once completed, a download URL",
        description="For the uploader, and for members of conversations the file was sent into.",
        responses=errors(401, 403, 404, 410),
    )
    async def status(self, file_id: FromPath[UUID], request: Request, user: UserDep, hub: HubDep) -> schemas.FileOut:
        view = await hub.view_upload.execute(user.id, file_id)
        download = None
        if view.upload.status is UploadStatus.COMPLETED:
            download = view.download_url or f"{_base_url(request, hub)}/v1/files/{file_id}/content"
        next_chunk = view.missing_chunks[0] if view.missing_chunks and view.upload.owner_id == user.id else None
        return views.file_out(view, download, chunk_url(request, hub, view.upload, next_chunk))

    @get(
        "/{file_id:uuid}/content",
        summary="Download a completed file",
        description="For the uploader, and for members of conversations the file was sent into.",
        responses={
            200: ResponseSpec(
                bytes, description="The file's bytes", media_type="application/octet-stream", generate_examples=False
            ),
            307: ResponseSpec(None, description="Redirect to a short-lived presigned URL (object storage)"),
            **errors(401, 403, 404, 409, 410),
        },
    )
    async def content(self, file_id: FromPath[UUID], user: UserDep, hub: HubDep) -> Response:
        upload = await hub.view_upload.readable(user.id, file_id)
        direct = hub.adapters.storage.download_url(upload.id, upload.filename)
        if direct:
            return Response(content=None, status_code=307, headers={"Location": direct})
        disposition = f"attachment; filename*=UTF-8''{quote(upload.filename, safe='')}"
        return Stream(
            hub.adapters.storage.read_file(upload.id),
            media_type="application/octet-stream",
            headers={"Content-Disposition": disposition, "Content-Length": str(upload.file_size)},
        )
