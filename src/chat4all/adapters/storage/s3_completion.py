"""Completing an S3 upload: its chunks are hashed and, only if they match the checksum, joined
into the file (s3_assembly.py), reusing what was hashed and copied while they arrived
(s3_running.py); a completion that races another one of the same upload, or a retry of one whose
answer was lost, is settled by what the store holds in the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from uuid import UUID

from botocore.exceptions import ClientError

from chat4all.adapters.storage.s3_assembly import ChunkAssembler, FileAlreadyStored, Mismatch
from chat4all.adapters.storage.s3_bucket import MULTIPART_GONE, NOT_FOUND, S3Bucket, error_code, forget, stream_into
from chat4all.adapters.storage.s3_digest import PartsCopiedAhead
from chat4all.adapters.storage.s3_limits import MAX_PARTS, MIN_PART_SIZE
from chat4all.adapters.storage.s3_running import RunningDigests
from chat4all.domain.errors import Conflict, InvalidInput
from chat4all.domain.uploads import stored_file_differs

logger = logging.getLogger(__name__)


class UploadCompletion:
    def __init__(self, bucket: S3Bucket, running: RunningDigests, assembler: ChunkAssembler):
        self._bucket = bucket
        self._running = running
        self._assembler = assembler

    async def complete(self, upload_id: UUID, total_chunks: int, checksum: str) -> str:
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
                await self._assembler.join_by_upload(self._bucket.file_key(upload_id), chunks)
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
            await self._bucket.abort_multipart_uploads(self._bucket.file_key(upload_id))
        except Exception:
            logger.warning("upload %s is complete but other multipart uploads of it remain", upload_id, exc_info=True)
        return digest

    async def _require_stored_checksum(self, upload_id: UUID, checksum: str) -> None:
        try:
            response = await self._bucket.call(
                self._bucket.client.get_object, Bucket=self._bucket.name, Key=self._bucket.file_key(upload_id)
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
        if await self._bucket.exists(self._bucket.file_key(upload_id)):
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
