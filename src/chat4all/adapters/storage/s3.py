"""Upload bytes in an S3-compatible object store (the distributed profile).

Only plain S3 calls are used (no versioning, no checksum extensions, path-style addressing), the
subset AWS S3, MinIO, Ceph, SeaweedFS and the Versity S3 Gateway (which the tests run against) share,
plus one conditional write: CompleteMultipartUpload with `If-None-Match: *`, which AWS S3 and the
Versity gateway honour (see `assemble_if_matches`; check it on another store before relying on it).
Each chunk is its own object, `uploads/<upload_id>/chunks/<index:05d>`, so a re-sent chunk simply
replaces one object and a failed checksum is fixed by re-sending only the bad chunks. Completing
hashes the chunks in order and, on a match, joins them server-side into `files/<file_id>` with
UploadPartCopy, each copy conditional on the ETag seen while hashing: a chunk replaced in between
makes the completion fail instead of storing bytes that were never hashed. Copies start as soon
as a chunk is hashed, so joining overlaps with hashing; on a mismatch the partial object is aborted
(s3_assembly.py). A file already stored is never replaced (see `assemble_if_matches`).

Chunks this process stores in order (chunk 0, 1, 2, ...) are hashed while they arrive: the running
SHA-256 state after each chunk is kept in memory with the ETag S3 returned for the PUT of exactly
those bytes. A chunk that arrives before its predecessor (clients send a few at once, and they
overtake each other), or that the chunk listing shows was PUT to a presigned URL or through another
API process, is read back in the background, conditional on its ETag, as soon as the chain
reaches it. Completing lists the chunks and trusts the longest prefix whose listed ETags are still
those ETags, reading back only the rest, so a chunk re-sent with other bytes, PUT to a presigned URL
or stored by another API process is simply hashed again from S3; the part copies stay conditional
on the ETags either way.

Each chunk hashed on arrival is also copied at once into a multipart upload of the final file
(s3_running.py), so completing a large upload mostly waits for CompleteMultipartUpload instead of
one part copy per chunk. Completing uses such a part only if it was copied from the very bytes it
hashed (same ETag) and copies everything else then. The copies ahead cost the store the same work,
earlier; `copy_ahead=False` turns them off.

boto3 is blocking; every call runs in a bounded thread pool so the event loop never waits on it
(s3_bucket.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any
from uuid import UUID

import attrs
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from chat4all.adapters.storage.disposition import attachment_disposition
from chat4all.adapters.storage.s3_assembly import ChunkAssembler, FileAlreadyStored, Mismatch
from chat4all.adapters.storage.s3_bucket import (
    BLOCK_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    MULTIPART_GONE,
    NOT_FOUND,
    S3Bucket,
    error_code,
    forget,
    stream_into,
)
from chat4all.adapters.storage.s3_running import PartsCopiedAhead, RunningDigests
from chat4all.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from chat4all.domain.uploads import stored_file_differs

logger = logging.getLogger(__name__)

DEFAULT_WORKERS = 16


@attrs.frozen
class S3Settings:
    bucket: str
    endpoint_url: str | None = None
    access_key: str | None = attrs.field(default=None, repr=False)
    secret_key: str | None = attrs.field(default=None, repr=False)
    region: str = "us-east-1"
    presign_endpoint: str | None = None
    url_ttl_seconds: int = 900
    key_prefix: str = ""
    copy_ahead: bool = True


def make_s3_client(settings: S3Settings, *, endpoint_url: str | None = None) -> Any:
    """A thread-safe client; credentials fall back to boto3's usual chain when not given."""
    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        max_pool_connections=32,
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # Default CRC checksums and aws-chunked bodies are not understood by every S3-compatible server.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or settings.endpoint_url,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        region_name=settings.region,
        config=config,
    )


class S3FileStorage:
    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        presign_client: Any | None = None,
        url_ttl_seconds: int = 900,
        key_prefix: str = "",
        executor: Executor | None = None,
        copy_concurrency: int = 4,
        copy_ahead: bool = True,
    ):
        self._presigner = presign_client or client
        self._ttl = url_ttl_seconds
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=DEFAULT_WORKERS, thread_name_prefix="s3")
        self._bucket = S3Bucket(client, bucket, self._executor, key_prefix=key_prefix)
        self._running = RunningDigests(self._bucket, copy_ahead=copy_ahead)
        self._assembler = ChunkAssembler(self._bucket, copy_concurrency=copy_concurrency)
        self._owned_clients: list[Any] = []

    @classmethod
    def from_settings(cls, settings: S3Settings, *, executor: Executor | None = None) -> S3FileStorage:
        client = make_s3_client(settings)
        presigner = (
            make_s3_client(settings, endpoint_url=settings.presign_endpoint) if settings.presign_endpoint else None
        )
        storage = cls(
            client,
            settings.bucket,
            presign_client=presigner,
            url_ttl_seconds=settings.url_ttl_seconds,
            key_prefix=settings.key_prefix,
            executor=executor,
            copy_ahead=settings.copy_ahead,
        )
        storage._owned_clients = [client, *([presigner] if presigner else [])]
        return storage

    async def close(self) -> None:
        """Releases the thread pool and clients this instance created (not those passed in)."""
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._running.close()
        for client in self._owned_clients:
            client.close()

    # FileStorage

    async def begin(self, upload_id: UUID) -> None:
        """Nothing to prepare: the chunk prefix exists as soon as a chunk is stored."""

    async def put_chunk(self, upload_id: UUID, index: int, data: bytes) -> None:
        key = self.chunk_key(upload_id, index)
        put = asyncio.ensure_future(
            self._bucket.call(self._bucket.client.put_object, Bucket=self._bucket.name, Key=key, Body=data)
        )
        await self._running.hash_while_stored(upload_id, index, data, put)

    async def stored_chunks(self, upload_id: UUID) -> dict[int, int]:
        listed = await self._bucket.list_chunks(upload_id)
        self._running.hash_listed_soon(upload_id, listed)
        return {index: size for index, (size, _) in listed.items()}

    async def assemble_if_matches(self, upload_id: UUID, total_chunks: int, checksum: str) -> str:
        """The file a completion stored stands (see FileStorage.assemble_if_matches), because the
        CompleteMultipartUpload that stores it carries `If-None-Match: *`: the store refuses to
        replace an existing file in the same step as it writes, where a HEAD first would leave a
        window between the check and the write. AWS S3 (since August 2024) and the Versity gateway
        honour it (Versity v1.8.0, which the tests run, checks it under a per-key publish lock). A
        store that ignores the header would replace the file, the race this guards against; one
        that rejects it fails every completion as unavailable.

        When the store refuses, the stored file is read back and hashed: the same SHA-256 is the
        same file (a retry after the completion could not be recorded, or two completions of the
        same bytes) and the completion succeeds; any other is a Conflict. The checksum is not kept in
        the object's metadata instead: metadata is fixed when a multipart upload is created, and
        the one parts are copied into while chunks arrive is created before the checksum is known.
        Reading the file back happens only on such retries and races."""
        running = self._running.get(upload_id)
        ahead = running.claim_ahead() if running is not None else None
        try:
            return await self._assemble(upload_id, total_chunks, checksum.strip().lower(), ahead)
        except BaseException:
            if ahead is not None:
                # Failed before the multipart upload took over (aborting twice is harmless).
                forget(asyncio.ensure_future(self._running.abandon(upload_id, ahead)))
            raise
        finally:
            if running is not None:
                running.completing = False

    async def _assemble(self, upload_id: UUID, total_chunks: int, expected: str, ahead: PartsCopiedAhead | None) -> str:
        try:
            listed = await self._bucket.list_chunks(upload_id)
            state, known = self._running.known_prefix(upload_id, total_chunks, listed)
            logger.info(
                "completing upload %s: %d of %d chunks hashed on arrival, reading back the rest",
                upload_id,
                len(known),
                total_chunks,
            )
            sizes = [listed.get(index, (0, ""))[0] for index in range(total_chunks)]
            if 0 < total_chunks <= MAX_PARTS and all(size >= MIN_PART_SIZE for size in sizes[:-1]):
                try:
                    digest, chunks = await self._assembler.hash_and_copy(
                        upload_id, total_chunks, state, known, expected, ahead
                    )
                except Mismatch as mismatch:
                    return mismatch.digest
            else:
                if ahead is not None:
                    await self._running.abandon(upload_id, ahead)
                digest, chunks = await self._assembler.hash_chunks(upload_id, total_chunks, state, known)
                if digest != expected:
                    return digest
                await self._assembler.join_by_upload(self.file_key(upload_id), chunks)
        except FileAlreadyStored:
            await self._require_stored_checksum(upload_id, expected)
            digest = expected
        except ClientError as error:
            if error_code(error) not in NOT_FOUND | MULTIPART_GONE:
                raise
            await self._settle_missing(upload_id, error, expected)
            digest = expected
        self._running.drop(upload_id)
        try:
            # Parts another process copied ahead for this upload (it may have stopped since).
            await self._bucket.abort_multipart_uploads(self.file_key(upload_id))
        except Exception:
            logger.warning("upload %s is complete but other multipart uploads of it remain", upload_id, exc_info=True)
        return digest

    async def release_chunks(self, upload_id: UUID) -> None:
        # Listed rather than taken from the assembly: the chunks may have been assembled by another
        # process, or before this one restarted.
        objects = await self._bucket.list_objects(self._bucket.chunk_prefix(upload_id))
        await self._bucket.delete_keys([key for key, _, _ in objects])

    async def file_exists(self, file_id: UUID) -> bool:
        try:
            await self._bucket.call(
                self._bucket.client.head_object, Bucket=self._bucket.name, Key=self.file_key(file_id)
            )
        except ClientError as error:
            if error_code(error) in NOT_FOUND:
                return False
            raise
        return True

    async def discard(self, upload_id: UUID) -> None:
        running = self._running.drop(upload_id)
        if running is not None and running.ahead is not None:
            # Its multipart upload may still be being created, too late for the listing below.
            await self._running.abandon(upload_id, running.ahead)
        upload_prefix = self._bucket.upload_prefix(upload_id)
        for prefix in (self.file_key(upload_id), upload_prefix):
            await self._bucket.abort_multipart_uploads(prefix)
        objects = await self._bucket.list_objects(upload_prefix)
        await self._bucket.delete_keys([key for key, _, _ in objects])

    def chunk_upload_url(self, upload_id: UUID, index: int, size: int) -> str | None:
        # Content-Length is signed: the store refuses a PUT of any other size.
        return self._presigner.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket.name, "Key": self.chunk_key(upload_id, index), "ContentLength": size},
            ExpiresIn=self._ttl,
        )

    def download_url(self, file_id: UUID, filename: str) -> str | None:
        return self._presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket.name,
                "Key": self.file_key(file_id),
                "ResponseContentDisposition": attachment_disposition(filename),
            },
            ExpiresIn=self._ttl,
        )

    async def read_file(self, file_id: UUID) -> AsyncIterator[bytes]:
        try:
            response = await self._bucket.call(
                self._bucket.client.get_object, Bucket=self._bucket.name, Key=self.file_key(file_id)
            )
        except ClientError as error:
            if error_code(error) in NOT_FOUND:
                raise NotFound("no such file", code="file_not_found") from None
            raise
        body = response["Body"]
        try:
            while block := await self._bucket.call(body.read, BLOCK_SIZE):
                yield block
        finally:
            body.close()

    async def check(self) -> None:
        try:
            await self._bucket.call(self._bucket.client.head_bucket, Bucket=self._bucket.name)
        except ClientError as error:
            raise Unavailable(
                f"object storage bucket {self._bucket.name!r} is not usable ({error_code(error)})"
            ) from error

    async def ensure_bucket(self) -> None:
        """Creates the bucket if it does not exist yet (for `migrate` and tests)."""
        try:
            await self._bucket.call(self._bucket.client.head_bucket, Bucket=self._bucket.name)
            return
        except ClientError as error:
            if error_code(error) not in NOT_FOUND:
                raise
        region = self._bucket.client.meta.region_name
        options: dict[str, Any] = {}
        if region and region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._bucket.call(self._bucket.client.create_bucket, Bucket=self._bucket.name, **options)
        except ClientError as error:
            if error_code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    def chunk_key(self, upload_id: UUID, index: int) -> str:
        return self._bucket.chunk_key(upload_id, index)

    def file_key(self, file_id: UUID) -> str:
        return self._bucket.file_key(file_id)

    async def _require_stored_checksum(self, upload_id: UUID, checksum: str) -> None:
        try:
            response = await self._bucket.call(
                self._bucket.client.get_object, Bucket=self._bucket.name, Key=self.file_key(upload_id)
            )
        except ClientError as error:
            if error_code(error) in NOT_FOUND:  # the write this one lost to failed after all, or is not done yet
                raise Conflict(
                    "the upload changed while it was being completed; complete it again", code="chunk_changed"
                ) from error
            raise
        digest = hashlib.sha256()
        await self._bucket.call(stream_into, response["Body"], digest)
        if digest.hexdigest() != checksum:
            raise stored_file_differs()

    async def _settle_missing(self, upload_id: UUID, error: ClientError, checksum: str) -> None:
        """Returns if the file was stored with `checksum` after all, else raises.

        A concurrent completion that finished first deletes the chunks and aborts the other
        multipart uploads of the file: the upload is completed. A multipart upload that vanished
        while the file holds these bytes is this completion's own, completed by a first
        CompleteMultipartUpload whose answer was lost (the client library's retry then finds it
        gone): this completion stored the file. Anything else that removes them is a missing chunk."""
        if await self.file_exists(upload_id):
            if error_code(error) in MULTIPART_GONE:
                await self._require_stored_checksum(upload_id, checksum)
                return
            raise Conflict("this upload is already completed", code="upload_completed") from error
        if error_code(error) in MULTIPART_GONE:
            raise Conflict(
                "the upload changed while it was being completed; complete it again", code="chunk_changed"
            ) from error
        raise InvalidInput(
            "a chunk disappeared while the upload was being completed; re-send missing chunks",
            code="missing_chunks",
        ) from error
