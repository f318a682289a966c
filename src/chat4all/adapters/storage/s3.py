"""Upload bytes in an S3-compatible object store (the distributed profile).

Only plain S3 calls are used (no versioning, no checksum extensions, path-style addressing), the
subset AWS S3, MinIO, Ceph, SeaweedFS and the Versity S3 Gateway (which the tests run against) share,
plus one conditional write: CompleteMultipartUpload with `If-None-Match: *`, which AWS S3 and the
Versity gateway honour (see s3_completion.py; check it on another store before relying on it).
Each chunk is its own object, `uploads/<upload_id>/chunks/<index:05d>`, so a re-sent chunk simply
replaces one object and a failed checksum is fixed by re-sending only the bad chunks. Completing
hashes the chunks in order and, on a match, joins them server-side into `files/<file_id>` with
UploadPartCopy, each copy conditional on the ETag seen while hashing: a chunk replaced in between
makes the completion fail instead of storing bytes that were never hashed. Copies start as soon
as a chunk is hashed, so joining overlaps with hashing; on a mismatch the partial object is aborted
(s3_assembly.py). A file already stored is never replaced (s3_completion.py).

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
(s3_running.py, s3_digest.py), so completing a large upload mostly waits for CompleteMultipartUpload instead of
one part copy per chunk. Completing uses such a part only if it was copied from the very bytes it
hashed (same ETag) and copies everything else then. The copies ahead cost the store the same work,
earlier; `copy_ahead=False` turns them off.

boto3 is blocking; every call runs in a bounded thread pool so the event loop never waits on it
(s3_bucket.py). Clients and their settings: s3_client.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from chat4all.adapters.storage.s3_assembly import ChunkAssembler
from chat4all.adapters.storage.s3_bucket import BLOCK_SIZE, NOT_FOUND, S3Bucket, error_code
from chat4all.adapters.storage.s3_client import S3StorageOptions, make_s3_client
from chat4all.adapters.storage.s3_completion import UploadCompletion
from chat4all.adapters.storage.s3_running import RunningDigests
from chat4all.domain.errors import NotFound, Unavailable
from chat4all.domain.uploads import attachment_disposition

__all__ = ["S3FileStorage", "S3StorageOptions", "make_s3_client"]

DEFAULT_WORKERS = 16


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
        self._completion = UploadCompletion(self._bucket, self._running, self._assembler)
        self._owned_clients: list[Any] = []

    @classmethod
    def from_options(cls, options: S3StorageOptions, *, executor: Executor | None = None) -> S3FileStorage:
        client = make_s3_client(options)
        presigner = (
            make_s3_client(options, endpoint_url=options.presign_endpoint) if options.presign_endpoint else None
        )
        storage = cls(
            client,
            options.bucket,
            presign_client=presigner,
            url_ttl_seconds=options.url_ttl_seconds,
            key_prefix=options.key_prefix,
            executor=executor,
            copy_ahead=options.copy_ahead,
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
        """See FileStorage.assemble_if_matches, and `UploadCompletion.complete` for how S3 keeps its promises."""
        return await self._completion.complete(upload_id, total_chunks, checksum)

    async def release_chunks(self, upload_id: UUID) -> None:
        # Listed rather than taken from the assembly: the chunks may have been assembled by another
        # process, or before this one restarted.
        objects = await self._bucket.list_objects(self._bucket.chunk_prefix(upload_id))
        await self._bucket.delete_keys([key for key, _, _ in objects])

    async def file_exists(self, file_id: UUID) -> bool:
        return await self._bucket.exists(self.file_key(file_id))

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

    async def read_file(self, file_id: UUID, start: int = 0) -> AsyncIterator[bytes]:
        part = {"Range": f"bytes={start}-"} if start else {}
        try:
            response = await self._bucket.call(
                self._bucket.client.get_object, Bucket=self._bucket.name, Key=self.file_key(file_id), **part
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
