"""Upload bytes in an S3-compatible object store (the distributed profile).

Only plain S3 calls are used (no versioning, no checksum extensions, path-style addressing), the
subset AWS S3, MinIO, Ceph, SeaweedFS and the Versity S3 Gateway (which the tests run against) share.
Each chunk is its own object, `uploads/<upload_id>/chunks/<index:05d>`, so a re-sent chunk simply
replaces one object and a failed checksum is fixed by re-sending only the bad chunks. Completing
hashes the chunks in order and, on a match, joins them server-side into `files/<file_id>` with
UploadPartCopy, each copy conditional on the ETag seen while hashing: a chunk replaced in between
makes the completion fail instead of storing bytes that were never hashed. Copies start as soon
as a chunk is hashed, so joining overlaps with hashing; on a mismatch the partial object is aborted.

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

boto3 is blocking; every call runs in a bounded thread pool so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import UUID

import attrs
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chat4all.adapters.storage.disposition import attachment_disposition
from chat4all.adapters.storage.s3_running import HashedChunk, PartCopiedAhead, PartsCopiedAhead, RunningDigest
from chat4all.domain.errors import Conflict, InvalidInput, NotFound, Unavailable

logger = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
DELETE_BATCH = 1000
DEFAULT_WORKERS = 16
# Copies made while chunks arrive: two streams already outrun the API's intake (~270 MiB/s each on
# the test server against ~150 MB/s of uploads) and leave the store's other threads to the PUTs.
COPY_AHEAD_CONCURRENCY = 2
# Running hashes kept per process (a few hundred bytes per chunk); the least recently used go first.
MAX_RUNNING_DIGESTS = 256
FILE_CONTENT_TYPE = "application/octet-stream"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# A multipart upload aborted under a completion, or its parts with it.
_MULTIPART_GONE = {"NoSuchUpload", "InvalidPart"}
_UNAVAILABLE = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}

T = TypeVar("T")


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


class _Mismatch(Exception):
    def __init__(self, digest: str):
        super().__init__(digest)
        self.digest = digest


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
        self._client = client
        self._presigner = presign_client or client
        self._bucket = bucket
        self._ttl = url_ttl_seconds
        self._prefix = key_prefix
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=DEFAULT_WORKERS, thread_name_prefix="s3")
        self._copy_concurrency = copy_concurrency
        self._copy_ahead = copy_ahead
        self._ahead_gate = asyncio.Semaphore(COPY_AHEAD_CONCURRENCY)
        self._owned_clients: list[Any] = []
        self._digests: OrderedDict[UUID, RunningDigest] = OrderedDict()
        # Running hashes advance one chunk at a time, so one thread does; it is not shared with the
        # S3 calls, so a chunk's turn never waits behind other uploads' PUTs.
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-hash")

    @classmethod
    def from_settings(cls, settings: S3Settings, *, executor: Executor | None = None) -> S3FileStorage:
        client = make_s3_client(settings)
        presigner = make_s3_client(settings, endpoint_url=settings.presign_endpoint) if settings.presign_endpoint else None
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
        self._hasher.shutdown(wait=False, cancel_futures=True)
        for client in self._owned_clients:
            client.close()

    # FileStorage

    async def begin(self, upload_id: UUID) -> None:
        """Nothing to prepare: the chunk prefix exists as soon as a chunk is stored."""

    async def put_chunk(self, upload_id: UUID, index: int, data: bytes) -> None:
        key = self.chunk_key(upload_id, index)
        running = self._running_digest(upload_id)
        put = asyncio.ensure_future(self._call(self._client.put_object, Bucket=self._bucket, Key=key, Body=data))
        try:
            hashed = await self._hash_in_turn(upload_id, running, index, data, put)
        except BaseException:
            put.add_done_callback(_consume)
            raise
        response = await put
        chunk = HashedChunk(key, response["ETag"], len(data))
        if hashed:
            running.etags[index] = chunk.etag
            self._start_copy_ahead(upload_id, running, index, chunk)
        elif index >= running.next:
            running.unhashed[index] = chunk
            self._catch_up_soon(upload_id, running)

    async def stored_chunks(self, upload_id: UUID) -> dict[int, int]:
        prefix = self._chunk_prefix(upload_id)
        listed = _chunk_entries(prefix, await self._call(self._list_objects, prefix))
        self._hash_listed_soon(upload_id, listed)
        return {index: size for index, (size, _) in listed.items()}

    def _hash_listed_soon(self, upload_id: UUID, listed: dict[int, tuple[int, str]]) -> None:
        """Chunks PUT straight to storage (presigned URLs) or through another API process are seen
        here when a client asks what is stored (it does, for the next upload URL): the chain reads
        them back in the background as it reaches them, as it does for chunks that came out of turn."""
        running = self._digests.get(upload_id)
        if running is None:
            if 0 not in listed:
                return
            running = self._running_digest(upload_id)
        for index, (size, etag) in listed.items():
            if index >= running.next and index not in running.unhashed:
                running.unhashed[index] = HashedChunk(self.chunk_key(upload_id, index), etag, size)
        self._catch_up_soon(upload_id, running)

    async def assemble_if_matches(self, upload_id: UUID, total_chunks: int, checksum: str) -> str:
        running = self._digests.get(upload_id)
        ahead = running.claim_ahead() if running is not None else None
        try:
            return await self._assemble(upload_id, total_chunks, checksum.strip().lower(), ahead)
        except BaseException:
            if ahead is not None:
                # Failed before the multipart upload took over (aborting twice is harmless).
                _forget(asyncio.ensure_future(self._abandon(self.file_key(upload_id), ahead)))
            raise
        finally:
            if running is not None:
                running.completing = False

    async def _assemble(
        self, upload_id: UUID, total_chunks: int, expected: str, ahead: PartsCopiedAhead | None
    ) -> str:
        prefix = self._chunk_prefix(upload_id)
        try:
            listed = _chunk_entries(prefix, await self._call(self._list_objects, prefix))
            state, known = self._known_prefix(upload_id, total_chunks, listed)
            logger.info(
                "completing upload %s: %d of %d chunks hashed on arrival, reading back the rest",
                upload_id, len(known), total_chunks,
            )
            sizes = [listed.get(index, (0, ""))[0] for index in range(total_chunks)]
            if 0 < total_chunks <= MAX_PARTS and all(size >= MIN_PART_SIZE for size in sizes[:-1]):
                try:
                    digest, chunks = await self._hash_and_copy(upload_id, total_chunks, state, known, expected, ahead)
                except _Mismatch as mismatch:
                    return mismatch.digest
            else:
                if ahead is not None:
                    await self._abandon(self.file_key(upload_id), ahead)
                digest, chunks = await self._hash_chunks(upload_id, total_chunks, state, known)
                if digest != expected:
                    return digest
                await self._join_by_upload(self.file_key(upload_id), chunks)
        except ClientError as error:
            if _error_code(error) in _NOT_FOUND | _MULTIPART_GONE:
                await self._raise_missing(upload_id, error)
            raise
        self._digests.pop(upload_id, None)
        try:
            # Parts another process copied ahead for this upload (it may have stopped since).
            await self._abort_multipart_uploads(self.file_key(upload_id))
        except Exception:
            logger.warning("upload %s is complete but other multipart uploads of it remain", upload_id, exc_info=True)
        return digest

    async def release_chunks(self, upload_id: UUID) -> None:
        # Listed rather than taken from the assembly: the chunks may have been assembled by another
        # process, or before this one restarted.
        objects = await self._call(self._list_objects, self._chunk_prefix(upload_id))
        await self._delete_keys([key for key, _, _ in objects])

    async def file_exists(self, file_id: UUID) -> bool:
        try:
            await self._call(self._client.head_object, Bucket=self._bucket, Key=self.file_key(file_id))
        except ClientError as error:
            if _error_code(error) in _NOT_FOUND:
                return False
            raise
        return True

    async def discard(self, upload_id: UUID) -> None:
        running = self._digests.pop(upload_id, None)
        if running is not None and running.ahead is not None:
            # Its multipart upload may still be being created, too late for the listing below.
            await self._abandon(self.file_key(upload_id), running.ahead)
        for prefix in (self.file_key(upload_id), self._upload_prefix(upload_id)):
            await self._abort_multipart_uploads(prefix)
        objects = await self._call(self._list_objects, self._upload_prefix(upload_id))
        await self._delete_keys([key for key, _, _ in objects])

    def chunk_upload_url(self, upload_id: UUID, index: int, size: int) -> str | None:
        # Content-Length is signed: the store refuses a PUT of any other size.
        return self._presigner.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": self.chunk_key(upload_id, index), "ContentLength": size},
            ExpiresIn=self._ttl,
        )

    def download_url(self, file_id: UUID, filename: str) -> str | None:
        return self._presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": self.file_key(file_id),
                "ResponseContentDisposition": attachment_disposition(filename),
            },
            ExpiresIn=self._ttl,
        )

    async def read_file(self, file_id: UUID) -> AsyncIterator[bytes]:
        try:
            response = await self._call(self._client.get_object, Bucket=self._bucket, Key=self.file_key(file_id))
        except ClientError as error:
            if _error_code(error) in _NOT_FOUND:
                raise NotFound("no such file", code="file_not_found") from None
            raise
        body = response["Body"]
        try:
            while block := await self._call(body.read, BLOCK_SIZE):
                yield block
        finally:
            body.close()

    async def check(self) -> None:
        try:
            await self._call(self._client.head_bucket, Bucket=self._bucket)
        except ClientError as error:
            raise Unavailable(f"object storage bucket {self._bucket!r} is not usable ({_error_code(error)})") from error

    async def ensure_bucket(self) -> None:
        """Creates the bucket if it does not exist yet (for `migrate` and tests)."""
        try:
            await self._call(self._client.head_bucket, Bucket=self._bucket)
            return
        except ClientError as error:
            if _error_code(error) not in _NOT_FOUND:
                raise
        region = self._client.meta.region_name
        options: dict[str, Any] = {}
        if region and region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._call(self._client.create_bucket, Bucket=self._bucket, **options)
        except ClientError as error:
            if _error_code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    # Keys: built only from UUIDs and integers.

    def chunk_key(self, upload_id: UUID, index: int) -> str:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"chunk index must be a non-negative int, got {index!r}")
        return f"{self._chunk_prefix(upload_id)}{index:05d}"

    def file_key(self, file_id: UUID) -> str:
        return f"{self._prefix}files/{_uuid(file_id)}"

    def _upload_prefix(self, upload_id: UUID) -> str:
        return f"{self._prefix}uploads/{_uuid(upload_id)}/"

    def _chunk_prefix(self, upload_id: UUID) -> str:
        return f"{self._upload_prefix(upload_id)}chunks/"

    # Assembly

    def _running_digest(self, upload_id: UUID) -> RunningDigest:
        running = self._digests.get(upload_id)
        if running is None:
            running = self._digests[upload_id] = RunningDigest()
            while len(self._digests) > MAX_RUNNING_DIGESTS:
                evicted_id, evicted = self._digests.popitem(last=False)
                if evicted.ahead is not None:
                    _forget(asyncio.ensure_future(self._abandon(self.file_key(evicted_id), evicted.ahead)))
        else:
            self._digests.move_to_end(upload_id)
        return running

    async def _hash_in_turn(
        self, upload_id: UUID, running: RunningDigest, index: int, data: bytes, put: asyncio.Future[Any]
    ) -> bool:
        """Extends the running hash with this chunk if it is next. Waits for its turn while its own PUT
        is in flight, and afterwards only while the chain is moving (a chunk being hashed, or the next
        one waiting here), so a gap never holds a request up. Says whether it hashed the chunk."""
        running.waiting[index] += 1
        try:
            while True:
                if index < running.next or (running.blocked_at is not None and index > running.blocked_at):
                    return False
                if index == running.next and not running.busy:
                    break
                if put.done() and not running.busy and running.waiting[running.next] == 0:
                    if index > running.next:
                        running.blocked_at = index if running.blocked_at is None else min(running.blocked_at, index)
                    return False
                waits: set[asyncio.Future[Any]] = {running.wait_for_change()}
                if not put.done():
                    waits.add(put)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            running.waiting[index] -= 1
            running.notify()  # a catch-up may be waiting for this request to take its turn
        with running.extending() as state:
            await asyncio.get_running_loop().run_in_executor(self._hasher, state.update, data)
            running.append(state, len(data))
        self._catch_up_soon(upload_id, running)
        return True

    def _catch_up_soon(self, upload_id: UUID, running: RunningDigest) -> None:
        if not running.catching_up and running.next in running.unhashed:
            running.catching_up = True
            _forget(asyncio.ensure_future(self._catch_up(upload_id, running)))

    async def _catch_up(self, upload_id: UUID, running: RunningDigest) -> None:
        """Extends the chain over chunks that came before their predecessor, reading each back
        (conditional on the ETag of its PUT), so that a client sending a few chunks at once, which
        reorders some, still gets a completion that reads nothing back. A chunk replaced meanwhile
        (the GET's condition fails) stops the chain there; completing reads the rest back."""
        try:
            while self._digests.get(upload_id) is running and (chunk := running.unhashed.get(running.next)) is not None:
                index = running.next
                if running.completing:
                    return  # the completion reads whatever is not hashed yet; reading it here too is waste
                if running.busy or running.waiting[index]:
                    # A request for that very chunk holds its bytes: it takes the turn.
                    await running.wait_for_change()
                    continue
                with running.extending() as state:
                    try:
                        response = await self._call(
                            self._client.get_object, Bucket=self._bucket, Key=chunk.key, IfMatch=chunk.etag
                        )
                        if response.get("ETag") != chunk.etag:  # a store that ignores If-Match on GET
                            response["Body"].close()
                            raise _Mismatch(str(response.get("ETag")))
                        size = await self._call(_stream_into, response["Body"], state)
                    except Exception:
                        logger.debug("upload %s: chunk %d is left to the completion", upload_id, index, exc_info=True)
                        running.unhashed.pop(index, None)
                        return
                    running.append(state, size, chunk.etag)
                self._start_copy_ahead(upload_id, running, index, chunk)
        finally:
            running.catching_up = False

    def _known_prefix(
        self, upload_id: UUID, total_chunks: int, listed: dict[int, tuple[int, str]]
    ) -> tuple[Any, list[HashedChunk]]:
        """The hash state and chunks of the longest prefix hashed here whose stored ETags are unchanged."""
        running = self._digests.get(upload_id)
        count = running.prefix(total_chunks, listed) if running is not None else 0
        if running is None or count == 0:
            return None, []
        known = [
            HashedChunk(self.chunk_key(upload_id, index), running.etags[index] or "", running.sizes[index])
            for index in range(count)
        ]
        return running.after[count - 1].copy(), known

    async def _hash_chunks(
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
        keys = [self.chunk_key(upload_id, index) for index in range(len(chunks), total_chunks)]
        pending = self._open_soon(keys[0]) if keys else None
        try:
            for position, key in enumerate(keys):
                assert pending is not None
                response = await pending
                pending = self._open_soon(keys[position + 1]) if position + 1 < len(keys) else None
                size = await self._call(_stream_into, response["Body"], digest)
                chunks.append(HashedChunk(key, response["ETag"], size))
                if on_hashed is not None:
                    on_hashed(len(chunks), chunks[-1])
        finally:
            if pending is not None:
                pending.add_done_callback(_close_response)
        return digest.hexdigest(), chunks

    def _open_soon(self, key: str) -> asyncio.Future[dict[str, Any]]:
        return asyncio.ensure_future(self._call(self._client.get_object, Bucket=self._bucket, Key=key))

    async def _hash_and_copy(
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
        bytes. Raises _Mismatch (after aborting the copies) if the digest is not `expected`."""
        file_key = self.file_key(upload_id)
        result: list[tuple[str, list[HashedChunk]]] = []
        if ahead is not None:
            await ahead.settled()

        async def copy_all(multipart_id: str) -> list[dict[str, Any]]:
            gate = asyncio.Semaphore(self._copy_concurrency)
            stop = False
            copies: list[asyncio.Future[dict[str, Any] | None]] = []

            async def copy(number: int, chunk: HashedChunk) -> dict[str, Any] | None:
                nonlocal stop
                async with gate:
                    if stop:
                        return None
                    try:
                        copied = ahead.usable_part(number - 1, chunk.etag) if ahead is not None else None
                        if copied is not None:
                            return copied.result()
                        return await self._copy_part(file_key, multipart_id, number, chunk)
                    except BaseException:
                        stop = True
                        raise

            def start(number: int, chunk: HashedChunk) -> None:
                copies.append(asyncio.ensure_future(copy(number, chunk)))

            for number, chunk in enumerate(known, start=1):
                start(number, chunk)
            try:
                digest, chunks = await self._hash_chunks(upload_id, total_chunks, state, known, on_hashed=start)
                if digest != expected:
                    raise _Mismatch(digest)
            except BaseException:
                stop = True
                await asyncio.gather(*copies, return_exceptions=True)
                raise
            outcomes = await asyncio.gather(*copies, return_exceptions=True)
            errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if errors:
                raise _changed_chunk(errors) or errors[0]
            result.append((digest, chunks))
            return [outcome for outcome in outcomes if isinstance(outcome, dict)]

        await self._multipart(file_key, copy_all, await self._ahead_multipart_id(ahead))
        return result[0]

    def _start_copy_ahead(self, upload_id: UUID, running: RunningDigest, index: int, chunk: HashedChunk) -> None:
        # While a completion runs it owns the multipart upload; a copy started now would go to a new
        # one that nobody completes.
        if not self._copy_ahead or running.completing or chunk.size < MIN_PART_SIZE or index >= MAX_PARTS:
            return
        # Completed, discarded or evicted meanwhile (a PUT can outlive all three): nobody would ever
        # complete or abort a multipart upload started now.
        if self._digests.get(upload_id) is not running:
            return
        file_key = self.file_key(upload_id)
        failed = running.ahead is not None and running.ahead.multipart_id.done() and (
            running.ahead.multipart_id.cancelled() or running.ahead.multipart_id.exception() is not None
        )
        if running.ahead is None or failed:
            running.ahead = PartsCopiedAhead(asyncio.ensure_future(self._create_multipart(file_key)))
        ahead = running.ahead

        async def copy() -> dict[str, Any]:
            async with self._ahead_gate:
                ahead.started.add(index)
                return await self._copy_part(file_key, await ahead.multipart_id, index + 1, chunk)

        # A failed copy is only a lost head start: completing copies that chunk again.
        ahead.parts[index] = PartCopiedAhead(chunk.etag, _forget(asyncio.ensure_future(copy())))

    async def _ahead_multipart_id(self, ahead: PartsCopiedAhead | None) -> str | None:
        if ahead is None:
            return None
        with contextlib.suppress(Exception):
            return await ahead.multipart_id
        return None

    async def _abandon(self, file_key: str, ahead: PartsCopiedAhead) -> None:
        await ahead.settled()
        multipart_id = await self._ahead_multipart_id(ahead)
        if multipart_id is not None:
            with contextlib.suppress(Exception):
                await self._call(self._abort, file_key, multipart_id)

    async def _copy_part(self, file_key: str, multipart_id: str, number: int, chunk: HashedChunk) -> dict[str, Any]:
        result = await self._call(
            self._client.upload_part_copy,
            Bucket=self._bucket,
            Key=file_key,
            UploadId=multipart_id,
            PartNumber=number,
            CopySource={"Bucket": self._bucket, "Key": chunk.key},
            CopySourceIfMatch=chunk.etag,
        )
        return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

    async def _join_by_upload(self, file_key: str, chunks: Sequence[HashedChunk]) -> None:
        """For chunks below S3's 5 MiB part minimum: re-read each chunk (conditional on its hashed
        ETag) and upload the bytes in parts of at least 5 MiB."""

        async def upload_all(multipart_id: str) -> list[dict[str, Any]]:
            parts: list[dict[str, Any]] = []
            buffer: list[bytes] = []
            buffered = 0

            async def flush() -> None:
                nonlocal buffer, buffered
                number = len(parts) + 1
                result = await self._call(
                    self._client.upload_part,
                    Bucket=self._bucket,
                    Key=file_key,
                    UploadId=multipart_id,
                    PartNumber=number,
                    Body=b"".join(buffer),
                )
                parts.append({"PartNumber": number, "ETag": result["ETag"]})
                buffer, buffered = [], 0

            for chunk in chunks:
                try:
                    blocks = await self._call(self._read_unchanged, chunk)
                except ClientError as error:
                    raise (_changed_chunk([error]) or error) from error
                buffer.extend(blocks)
                buffered += chunk.size
                if buffered >= 2 * MIN_PART_SIZE:
                    await flush()
            if buffer or not parts:
                await flush()
            return parts

        await self._multipart(file_key, upload_all)

    def _read_unchanged(self, chunk: HashedChunk) -> list[bytes]:
        response = self._client.get_object(Bucket=self._bucket, Key=chunk.key, IfMatch=chunk.etag)
        with contextlib.closing(response["Body"]) as body:
            return list(iter(functools.partial(body.read, BLOCK_SIZE), b""))

    async def _create_multipart(self, file_key: str) -> str:
        created = await self._call(
            self._client.create_multipart_upload, Bucket=self._bucket, Key=file_key, ContentType=FILE_CONTENT_TYPE
        )
        return str(created["UploadId"])

    async def _multipart(self, file_key: str, add_parts: Callable[[str], Any], multipart_id: str | None = None) -> None:
        """Completes `multipart_id` (a new multipart upload if None) with the parts `add_parts` returns,
        or aborts it if anything fails."""
        if multipart_id is None:
            multipart_id = await self._create_multipart(file_key)
        try:
            parts = await add_parts(multipart_id)
            await self._call(
                self._client.complete_multipart_upload,
                Bucket=self._bucket,
                Key=file_key,
                UploadId=multipart_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            try:
                await self._call(self._abort, file_key, multipart_id)
            except Exception:
                logger.warning("could not abort multipart upload %s of %s", multipart_id, file_key, exc_info=True)
            raise

    async def _raise_missing(self, upload_id: UUID, error: ClientError) -> None:
        """A concurrent completion that finished first deletes the chunks and aborts the other
        multipart uploads of the file; anything else that removes them is a missing chunk."""
        if await self.file_exists(upload_id):
            raise Conflict("this upload is already completed", code="upload_completed") from error
        if _error_code(error) in _MULTIPART_GONE:
            raise Conflict(
                "the upload changed while it was being completed; complete it again", code="chunk_changed"
            ) from error
        raise InvalidInput(
            "a chunk disappeared while the upload was being completed; re-send missing chunks",
            code="missing_chunks",
        ) from error

    # Blocking helpers, run in the pool.

    def _list_objects(self, prefix: str) -> list[tuple[str, int, str]]:
        found = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            found.extend((item["Key"], item["Size"], item.get("ETag", "")) for item in page.get("Contents", ()))
        return found

    def _list_multipart_uploads(self, prefix: str) -> list[tuple[str, str]]:
        found = []
        for page in self._client.get_paginator("list_multipart_uploads").paginate(Bucket=self._bucket, Prefix=prefix):
            found.extend((item["Key"], item["UploadId"]) for item in page.get("Uploads", ()))
        return found

    async def _abort_multipart_uploads(self, prefix: str) -> None:
        for key, multipart_id in await self._call(self._list_multipart_uploads, prefix):
            with contextlib.suppress(ClientError):
                await self._call(self._abort, key, multipart_id)

    def _abort(self, key: str, multipart_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=multipart_id)
        except ClientError as error:
            if _error_code(error) != "NoSuchUpload":
                raise

    async def _delete_keys(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            result = await self._call(
                self._client.delete_objects,
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            failures = [item for item in result.get("Errors", ()) if item.get("Code") != "NoSuchKey"]
            if failures:
                raise Unavailable(
                    f"object storage refused to delete {len(failures)} object(s): {failures[0].get('Code')}"
                )

    async def _call(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))
        except (BotoConnectionError, HTTPClientError) as error:
            raise Unavailable("object storage unavailable") from error
        except ClientError as error:
            if _error_code(error) in _UNAVAILABLE or _status(error) >= 500:
                raise Unavailable("object storage unavailable") from error
            raise


def _chunk_entries(prefix: str, objects: Iterable[tuple[str, int, str]]) -> dict[int, tuple[int, str]]:
    """Chunk index -> (size, ETag) of the objects listed under an upload's chunk prefix."""
    entries: dict[int, tuple[int, str]] = {}
    for key, size, etag in objects:
        name = key[len(prefix) :]
        if name.isascii() and name.isdigit():
            entries[int(name)] = (size, etag)
    return entries


def _forget(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """Marks a background call whose failure nobody needs to hear about."""
    future.add_done_callback(_consume)
    return future


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieves the outcome of a call nobody awaits any more, so it is not reported as lost."""
    if not future.cancelled():
        future.exception()


def _stream_into(body: Any, digest: Any) -> int:
    size = 0
    with contextlib.closing(body):
        while block := body.read(BLOCK_SIZE):
            digest.update(block)
            size += len(block)
    return size


def _close_response(opened: asyncio.Future[dict[str, Any]]) -> None:
    """Releases the connection of a GET that was opened ahead but will not be read."""
    if not opened.cancelled() and opened.exception() is None:
        opened.result()["Body"].close()


def _changed_chunk(errors: Sequence[BaseException]) -> Conflict | None:
    """A failed ETag precondition, as the domain error it stands for."""
    for error in errors:
        if isinstance(error, ClientError) and (
            _error_code(error) in {"PreconditionFailed", "412"} or _status(error) == 412
        ):
            changed = Conflict(
                "a chunk was replaced while the upload was being completed; complete it again", code="chunk_changed"
            )
            changed.__cause__ = error
            return changed
    return None


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _uuid(value: UUID) -> UUID:
    if not isinstance(value, UUID):
        raise TypeError(f"expected a UUID, got {type(value).__name__}")
    return value
