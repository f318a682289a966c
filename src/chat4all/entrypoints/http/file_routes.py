from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from chat4all.application.downloads import ByteRange, Download
from chat4all.application.uploads import CompleteUpload, InitiateUpload, UploadChunk, ViewUpload
from chat4all.domain.errors import InvalidInput
from chat4all.entrypoints.http import schemas, views
from chat4all.entrypoints.http.dependencies import UserDep, provide_user
from chat4all.entrypoints.http.links import FILES, Links
from chat4all.entrypoints.http.openapi_docs import BEARER, ChunkUploadOperation, errors

ChunkIndex = Annotated[int, QueryParameter(ge=0, le=2**31 - 1, description="0-based chunk number")]
# The largest chunk size the settings allow, plus room for multipart framing.
MAX_CHUNK_REQUEST = 64 * 1024 * 1024 + 64 * 1024
LinksDep = NamedDependency[Links]
SINGLE_RANGE = re.compile(r"bytes=(\d{1,19})-(\d{0,19})")


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
        return await _read_file_part(request, expected)
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


async def _read_file_part(request: Request, expected: int) -> bytes:
    form = await request.form()
    part = form.get("file")
    if not isinstance(part, UploadFile):
        raise InvalidInput("multipart body needs a file field named 'file'", field_errors={"file": ["required"]})
    data = await part.read(expected + 1)
    await part.close()
    if len(data) > expected:
        raise _too_long(expected)
    return data


def requested_range(header: str | None) -> ByteRange | None:
    """The one `bytes=first-[last]` range a Range header asks for. Other forms (several ranges, a
    suffix) are ignored and the whole file is served, as HTTP allows."""
    match = SINGLE_RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first, last = int(match[1]), int(match[2]) if match[2] else None
    return ByteRange(first, last) if last is None or last >= first else None


def served(download: Download) -> Stream:
    size = download.upload.file_size
    headers = {"Content-Disposition": download.disposition, "Accept-Ranges": "bytes", "Content-Length": str(size)}
    if download.span is None:
        return Stream(download.content, media_type="application/octet-stream", headers=headers)
    first, last = download.span
    headers |= {"Content-Range": f"bytes {first}-{last}/{size}", "Content-Length": str(last - first + 1)}
    return Stream(download.content, status_code=206, media_type="application/octet-stream", headers=headers)


class FileController(Controller):
    path = FILES
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
    async def initiate(
        self,
        data: JSONBody[schemas.FileInitiate],
        user: UserDep,
        links: LinksDep,
        initiate_upload: NamedDependency[InitiateUpload],
    ) -> schemas.FileInitiated:
        started = await initiate_upload.start(user.id, data.filename, data.file_size, data.content_type)
        upload = started.upload
        return schemas.FileInitiated(
            file_id=upload.id,
            chunk_size=upload.chunk_size,
            total_chunks=upload.total_chunks,
            upload_url=links.chunk(started.next_chunk) or "",
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
        self,
        request: Request,
        user: UserDep,
        links: LinksDep,
        upload_chunk: NamedDependency[UploadChunk],
        file_id: FromQuery[UUID],
        chunk_id: ChunkIndex,
    ) -> schemas.ChunkReceived:
        progress = await upload_chunk.receive(user.id, file_id, chunk_id, lambda size: read_chunk(request, size))
        upload = progress.upload
        return schemas.ChunkReceived(
            file_id=upload.id,
            chunk_id=chunk_id,
            received_chunks=len(upload.received_chunks),
            total_chunks=upload.total_chunks,
            next_upload_url=links.chunk(progress.next_chunk),
        )

    @post(
        "/complete",
        status_code=HTTP_200_OK,
        summary="Verify the whole file's SHA-256 and make it sendable (uploader only)",
        responses=errors(400, 401, 403, 404, 409, 410, 413),
    )
    async def complete(
        self, data: JSONBody[schemas.FileComplete], user: UserDep, complete_upload: NamedDependency[CompleteUpload]
    ) -> schemas.FileCompleted:
        upload = await complete_upload.execute(user.id, data.file_id, data.checksum)
        return schemas.FileCompleted(upload.id, upload.status.value, upload.filename, upload.file_size, upload.checksum or "")

    @get(
        "/{file_id:uuid}",
        summary="Upload status, missing chunks (to resume) and, once completed, a download URL",
        description="For the uploader, and for members of conversations the file was sent into.",
        responses=errors(401, 403, 404, 410),
    )
    async def status(
        self, file_id: FromPath[UUID], user: UserDep, links: LinksDep, view_upload: NamedDependency[ViewUpload]
    ) -> schemas.FileOut:
        view = await view_upload.execute(user.id, file_id)
        return views.file_out(view, links.download(view), links.chunk(view.next_chunk))

    @get(
        "/{file_id:uuid}/content",
        summary="Download a completed file",
        description="For the uploader, and for members of conversations the file was sent into. A `Range: "
        "bytes=first-[last]` header asks for a part (206), to resume an interrupted download; storage's own URLs "
        "take it too.",
        responses={
            200: ResponseSpec(
                bytes, description="The file's bytes", media_type="application/octet-stream", generate_examples=False
            ),
            206: ResponseSpec(
                bytes, description="The part asked for", media_type="application/octet-stream", generate_examples=False
            ),
            307: ResponseSpec(None, description="Redirect to a short-lived presigned URL (object storage)"),
            **errors(401, 403, 404, 409, 410, 416),
        },
    )
    async def content(
        self, request: Request, file_id: FromPath[UUID], user: UserDep, view_upload: NamedDependency[ViewUpload]
    ) -> Response:
        download = await view_upload.download(user.id, file_id, requested_range(request.headers.get("range")))
        if download.redirect_url is not None:
            return Response(content=None, status_code=307, headers={"Location": download.redirect_url})
        return served(download)
