"""Joining an upload's chunks into its file, server-side, only if they hash to the expected SHA-256.

Chunks are hashed in order (after the prefix the running digest already covers) and each one is
copied into a multipart upload of the file as soon as it is hashed, with UploadPartCopy conditional
on the ETag of the bytes hashed: a chunk replaced in between fails the copy instead of slipping
into the file. Chunks below S3's 5 MiB part minimum are read back (conditional on the same ETags)
and uploaded in larger parts instead. On a mismatch or any failure the multipart upload is aborted.

CompleteMultipartUpload is conditional on the file not existing yet (`If-None-Match: *`): a file
another completion stored first is never replaced (FileAlreadyStored; see S3FileStorage).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from chat4all.adapters.storage.s3_bucket import (
    BLOCK_SIZE,
    HashedChunk,
    S3Bucket,
    changed_chunk,
    close_response,
    error_code,
    precondition_failed,
    stream_into,
)
from chat4all.adapters.storage.s3_digest import PartsCopiedAhead
from chat4all.adapters.storage.s3_limits import MIN_PART_SIZE

logger = logging.getLogger(__name__)


class Mismatch(Exception):
    """The chunks hash to `digest`, not to the checksum the completion expected."""

    def __init__(self, digest: str):
        super().__init__(digest)
        self.digest = digest


class FileAlreadyStored(Exception):
    """The file was stored (by another completion) before this one could complete it."""


class ChunkAssembler:
    def __init__(self, bucket: S3Bucket, *, copy_concurrency: int = 4):
        self._bucket = bucket
        self._copy_concurrency = copy_concurrency

    async def hash_chunks(
        self,
        upload_id: UUID,
        total_chunks: int,
        state: Any = None,
        known: Sequence[HashedChunk] = (),
        on_hashed: Callable[[int, HashedChunk], None] | None = None,
    ) -> tuple[str, list[HashedChunk]]:
        """Streams the chunks after `known` in order through SHA-256 (continuing `state`), recording
        the ETag of the bytes actually hashed. The GET of chunk i+1 is already answered while chunk i
        is hashed, which hides the store's time to first byte without holding whole chunks in memory.
        `on_hashed(part_number, chunk)` is called as each chunk is done."""
        digest = state if state is not None else hashlib.sha256()
        chunks: list[HashedChunk] = list(known)
        keys = [self._bucket.chunk_key(upload_id, index) for index in range(len(chunks), total_chunks)]
        pending = self.open_soon(keys[0]) if keys else None
        try:
            for position, key in enumerate(keys):
                assert pending is not None
                response = await pending
                pending = self.open_soon(keys[position + 1]) if position + 1 < len(keys) else None
                size = await self._bucket.call(stream_into, response["Body"], digest)
                chunks.append(HashedChunk(key, response["ETag"], size))
                if on_hashed is not None:
                    on_hashed(len(chunks), chunks[-1])
        finally:
            if pending is not None:
                pending.add_done_callback(close_response)
        return digest.hexdigest(), chunks

    def open_soon(self, key: str) -> asyncio.Future[dict[str, Any]]:
        return asyncio.ensure_future(
            self._bucket.call(self._bucket.client.get_object, Bucket=self._bucket.name, Key=key)
        )

    async def hash_and_copy(
        self,
        upload_id: UUID,
        total_chunks: int,
        state: Any,
        known: Sequence[HashedChunk],
        expected: str,
        ahead: PartsCopiedAhead | None = None,
    ) -> tuple[str, list[HashedChunk]]:
        """Server-side join: one UploadPartCopy per chunk, each conditional on the hashed ETag, started
        as soon as that chunk is hashed, except for chunks whose part was copied ahead from the same
        bytes. Raises Mismatch (after aborting the copies) if the digest is not `expected`."""
        file_key = self._bucket.file_key(upload_id)
        result: list[tuple[str, list[HashedChunk]]] = []
        if ahead is not None:
            await ahead.settled()

        async def copy_all(multipart_id: str) -> list[dict[str, Any]]:
            copies = _PartCopies(self._bucket, file_key, multipart_id, self._copy_concurrency, ahead)
            for number, chunk in enumerate(known, start=1):
                copies.start(number, chunk)
            try:
                digest, chunks = await self.hash_chunks(upload_id, total_chunks, state, known, on_hashed=copies.start)
                if digest != expected:
                    raise Mismatch(digest)
            except BaseException:
                await copies.abandon()
                raise
            parts = await copies.parts()
            result.append((digest, chunks))
            return parts

        multipart_id = await ahead.created_id() if ahead is not None else None
        await self._multipart(file_key, copy_all, multipart_id)
        return result[0]

    async def join_by_upload(self, file_key: str, chunks: Sequence[HashedChunk]) -> None:
        """For chunks below S3's 5 MiB part minimum: re-read each chunk (conditional on its hashed
        ETag) and upload the bytes in parts of at least 5 MiB."""

        async def upload_all(multipart_id: str) -> list[dict[str, Any]]:
            parts: list[dict[str, Any]] = []
            buffer: list[bytes] = []
            buffered = 0

            async def flush() -> None:
                nonlocal buffer, buffered
                number = len(parts) + 1
                result = await self._bucket.call(
                    self._bucket.client.upload_part,
                    Bucket=self._bucket.name,
                    Key=file_key,
                    UploadId=multipart_id,
                    PartNumber=number,
                    Body=b"".join(buffer),
                )
                parts.append({"PartNumber": number, "ETag": result["ETag"]})
                buffer, buffered = [], 0

            for chunk in chunks:
                try:
                    blocks = await self._bucket.call(self._read_unchanged, chunk)
                except ClientError as error:
                    raise (changed_chunk([error]) or error) from error
                buffer.extend(blocks)
                buffered += chunk.size
                if buffered >= 2 * MIN_PART_SIZE:
                    await flush()
            if buffer or not parts:
                await flush()
            return parts

        await self._multipart(file_key, upload_all)

    def _read_unchanged(self, chunk: HashedChunk) -> list[bytes]:
        response = self._bucket.client.get_object(Bucket=self._bucket.name, Key=chunk.key, IfMatch=chunk.etag)
        with contextlib.closing(response["Body"]) as body:
            return list(iter(functools.partial(body.read, BLOCK_SIZE), b""))

    async def _multipart(self, file_key: str, add_parts: Callable[[str], Any], multipart_id: str | None = None) -> None:
        """Completes `multipart_id` (a new multipart upload if None) with the parts `add_parts` returns,
        unless the file exists by then (FileAlreadyStored), or aborts it if anything fails."""
        if multipart_id is None:
            multipart_id = await self._bucket.create_multipart(file_key)
        try:
            parts = await add_parts(multipart_id)
            try:
                await self._bucket.call(
                    self._bucket.client.complete_multipart_upload,
                    Bucket=self._bucket.name,
                    Key=file_key,
                    UploadId=multipart_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
            except ClientError as error:
                # AWS may answer 409 instead while another write to the key is under way.
                if precondition_failed(error) or error_code(error) == "ConditionalRequestConflict":
                    raise FileAlreadyStored(file_key) from error
                raise
        except BaseException:
            try:
                await self._bucket.abort(file_key, multipart_id)
            except Exception:
                logger.warning("could not abort multipart upload %s of %s", multipart_id, file_key, exc_info=True)
            raise


class _PartCopies:
    """The part copies of one server-side join: started as their chunks are hashed, at most
    `concurrency` at once, none started after one failed."""

    def __init__(
        self, bucket: Any, file_key: str, multipart_id: str, concurrency: int, ahead: PartsCopiedAhead | None
    ) -> None:
        self._bucket = bucket
        self._file_key = file_key
        self._multipart_id = multipart_id
        self._ahead = ahead
        self._gate = asyncio.Semaphore(concurrency)
        self._stop = False
        self._copies: list[asyncio.Future[dict[str, Any] | None]] = []

    def start(self, number: int, chunk: HashedChunk) -> None:
        self._copies.append(asyncio.ensure_future(self._copy(number, chunk)))

    async def _copy(self, number: int, chunk: HashedChunk) -> dict[str, Any] | None:
        async with self._gate:
            if self._stop:
                return None
            try:
                copied = self._ahead.usable_part(number - 1, chunk.etag) if self._ahead is not None else None
                if copied is not None:
                    return copied.result()
                return await self._bucket.copy_part(self._file_key, self._multipart_id, number, chunk)
            except BaseException:
                self._stop = True
                raise

    async def abandon(self) -> None:
        self._stop = True
        await asyncio.gather(*self._copies, return_exceptions=True)

    async def parts(self) -> list[dict[str, Any]]:
        """The copied parts, in order; raises the first failure (a changed chunk's, if any)."""
        outcomes = await asyncio.gather(*self._copies, return_exceptions=True)
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if errors:
            raise changed_chunk(errors) or errors[0]
        return [outcome for outcome in outcomes if isinstance(outcome, dict)]
