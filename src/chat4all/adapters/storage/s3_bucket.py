"""One bucket of an S3-compatible store: where an upload's objects go, and the calls made on them.

boto3 blocks; every call runs in a bounded thread pool so the event loop never waits on it, and
failures that mean "try again later" (connection errors, 5xx, throttling) come out as Unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar
from uuid import UUID

import attrs
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chat4all.domain.errors import Conflict, Unavailable

BLOCK_SIZE = 1024 * 1024
DELETE_BATCH = 1000
FILE_CONTENT_TYPE = "application/octet-stream"
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# A multipart upload aborted under a completion, or its parts with it.
MULTIPART_GONE = {"NoSuchUpload", "InvalidPart"}
_UNAVAILABLE = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}

T = TypeVar("T")


@attrs.frozen
class HashedChunk:
    """A chunk object as it was when its bytes were hashed: part copies and re-reads of it are
    conditional on `etag`, so a chunk replaced since then can never slip into the file."""

    key: str
    etag: str
    size: int


class S3Bucket:
    def __init__(self, client: Any, name: str, executor: Executor, *, key_prefix: str = ""):
        self.client = client
        self.name = name
        self._executor = executor
        self._prefix = key_prefix

    # Keys: built only from UUIDs and integers.

    def chunk_key(self, upload_id: UUID, index: int) -> str:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"chunk index must be a non-negative int, got {index!r}")
        return f"{self.chunk_prefix(upload_id)}{index:05d}"

    def file_key(self, file_id: UUID) -> str:
        return f"{self._prefix}files/{_uuid(file_id)}"

    def upload_prefix(self, upload_id: UUID) -> str:
        return f"{self._prefix}uploads/{_uuid(upload_id)}/"

    def chunk_prefix(self, upload_id: UUID) -> str:
        return f"{self.upload_prefix(upload_id)}chunks/"

    # Calls

    async def call(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))
        except (BotoConnectionError, HTTPClientError) as error:
            raise Unavailable("object storage unavailable") from error
        except ClientError as error:
            if error_code(error) in _UNAVAILABLE or status(error) >= 500:
                raise Unavailable("object storage unavailable") from error
            raise

    async def exists(self, key: str) -> bool:
        try:
            await self.call(self.client.head_object, Bucket=self.name, Key=key)
        except ClientError as error:
            if error_code(error) in NOT_FOUND:
                return False
            raise
        return True

    async def list_objects(self, prefix: str) -> list[tuple[str, int, str]]:
        """(key, size, ETag) of every object under `prefix`."""
        return await self.call(self._list_objects, prefix)

    async def list_chunks(self, upload_id: UUID) -> dict[int, tuple[int, str]]:
        """Chunk index -> (size, ETag) of the chunks stored for an upload."""
        prefix = self.chunk_prefix(upload_id)
        entries: dict[int, tuple[int, str]] = {}
        for key, size, etag in await self.list_objects(prefix):
            name = key[len(prefix) :]
            if name.isascii() and name.isdigit():
                entries[int(name)] = (size, etag)
        return entries

    async def create_multipart(self, file_key: str) -> str:
        created = await self.call(
            self.client.create_multipart_upload, Bucket=self.name, Key=file_key, ContentType=FILE_CONTENT_TYPE
        )
        return str(created["UploadId"])

    async def copy_part(self, file_key: str, multipart_id: str, number: int, chunk: HashedChunk) -> dict[str, Any]:
        """Copies a chunk into part `number`, only if it still has the ETag it was hashed with."""
        result = await self.call(
            self.client.upload_part_copy,
            Bucket=self.name,
            Key=file_key,
            UploadId=multipart_id,
            PartNumber=number,
            CopySource={"Bucket": self.name, "Key": chunk.key},
            CopySourceIfMatch=chunk.etag,
        )
        return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

    async def abort(self, key: str, multipart_id: str) -> None:
        await self.call(self._abort, key, multipart_id)

    async def abort_multipart_uploads(self, prefix: str) -> None:
        for key, multipart_id in await self.call(self._list_multipart_uploads, prefix):
            with contextlib.suppress(ClientError):
                await self.abort(key, multipart_id)

    async def delete_keys(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            result = await self.call(
                self.client.delete_objects,
                Bucket=self.name,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            failures = [item for item in result.get("Errors", ()) if item.get("Code") != "NoSuchKey"]
            if failures:
                raise Unavailable(
                    f"object storage refused to delete {len(failures)} object(s): {failures[0].get('Code')}"
                )

    # Blocking helpers, run in the pool.

    def _list_objects(self, prefix: str) -> list[tuple[str, int, str]]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            found.extend((item["Key"], item["Size"], item.get("ETag", "")) for item in page.get("Contents", ()))
        return found

    def _list_multipart_uploads(self, prefix: str) -> list[tuple[str, str]]:
        found = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.name, Prefix=prefix):
            found.extend((item["Key"], item["UploadId"]) for item in page.get("Uploads", ()))
        return found

    def _abort(self, key: str, multipart_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=multipart_id)
        except ClientError as error:
            if error_code(error) != "NoSuchUpload":
                raise


def forget(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """Marks a background call whose failure nobody needs to hear about."""
    future.add_done_callback(consume)
    return future


def consume(future: asyncio.Future[Any]) -> None:
    """Retrieves the outcome of a call nobody awaits any more, so it is not reported as lost."""
    if not future.cancelled():
        future.exception()


def stream_into(body: Any, digest: Any) -> int:
    """Feeds a response body through `digest` (blocking) and says how many bytes it had."""
    size = 0
    with contextlib.closing(body):
        while block := body.read(BLOCK_SIZE):
            digest.update(block)
            size += len(block)
    return size


def close_response(opened: asyncio.Future[dict[str, Any]]) -> None:
    """Releases the connection of a GET that was opened ahead but will not be read."""
    if not opened.cancelled() and opened.exception() is None:
        opened.result()["Body"].close()


def changed_chunk(errors: Sequence[BaseException]) -> Conflict | None:
    """A failed ETag precondition, as the domain error it stands for."""
    for error in errors:
        if isinstance(error, ClientError) and precondition_failed(error):
            changed = Conflict(
                "a chunk was replaced while the upload was being completed; complete it again", code="chunk_changed"
            )
            changed.__cause__ = error
            return changed
    return None


def precondition_failed(error: ClientError) -> bool:
    return error_code(error) in {"PreconditionFailed", "412"} or status(error) == 412


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _uuid(value: UUID) -> UUID:
    if not isinstance(value, UUID):
        raise TypeError(f"expected a UUID, got {type(value).__name__}")
    return value
