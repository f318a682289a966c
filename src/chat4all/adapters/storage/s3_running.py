"""What one API process remembers about an S3 upload while its chunks arrive.

Chunks stored in order are hashed as they arrive (`RunningDigest`), and each one hashed is copied
at once into a multipart upload of the final file (`PartsCopiedAhead`), so that completing a 2 GiB
upload is mostly S3's CompleteMultipartUpload instead of 256 part copies. All of this is only a
head start: the chunk objects stay the truth until the file is complete, every part copy is
conditional on the ETag of the bytes that were hashed, and completing reuses a part only if it was
copied from the very ETag it hashes (itself checked against the chunk listing), copying again
whatever does not match. Chunks stored out of turn (`unhashed`) are read back and hashed in the
background once the chain reaches them (`RunningDigests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from chat4all.adapters.storage.s3_bucket import HashedChunk, S3Bucket, consume, forget, stream_into
from chat4all.adapters.storage.s3_digest import PartCopiedAhead, PartsCopiedAhead, RunningDigest
from chat4all.adapters.storage.s3_limits import MAX_PARTS, MIN_PART_SIZE

logger = logging.getLogger(__name__)

# Copies made while chunks arrive: two streams already outrun the API's intake (~270 MiB/s each on
# the test server against ~150 MB/s of uploads) and leave the store's other threads to the PUTs.
COPY_AHEAD_CONCURRENCY = 2
# Running hashes kept per process (a few hundred bytes per chunk); the least recently used go first.
MAX_RUNNING_DIGESTS = 256


class RunningDigests:
    """The running digests of the uploads this process receives (the least recently used are
    forgotten first), and the work that extends them in the background: reading back chunks that
    came out of turn, and copying every chunk hashed into its upload's multipart upload."""

    def __init__(self, bucket: S3Bucket, *, copy_ahead: bool = True):
        self.copy_ahead = copy_ahead
        self.ahead_gate = asyncio.Semaphore(COPY_AHEAD_CONCURRENCY)
        self._bucket = bucket
        self._digests: OrderedDict[UUID, RunningDigest] = OrderedDict()
        # Running hashes advance one chunk at a time, so one thread does; it is not shared with the
        # S3 calls, so a chunk's turn never waits behind other uploads' PUTs.
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-hash")

    def close(self) -> None:
        self._hasher.shutdown(wait=False, cancel_futures=True)

    def get(self, upload_id: UUID) -> RunningDigest | None:
        return self._digests.get(upload_id)

    def drop(self, upload_id: UUID) -> RunningDigest | None:
        return self._digests.pop(upload_id, None)

    async def hash_while_stored(self, upload_id: UUID, index: int, data: bytes, put: asyncio.Future[Any]) -> None:
        """Extends the upload's running hash with a chunk whose PUT (`put`) is under way, or leaves
        the chunk to be read back once the chain reaches it. Returns once the PUT is done."""
        running = self._tracked(upload_id)
        try:
            hashed = await self._hash_in_turn(upload_id, running, index, data, put)
        except BaseException:
            put.add_done_callback(consume)
            raise
        response = await put
        chunk = HashedChunk(self._bucket.chunk_key(upload_id, index), response["ETag"], len(data))
        if hashed:
            running.etags[index] = chunk.etag
            self._start_copy_ahead(upload_id, running, index, chunk)
        elif index >= running.next:
            running.unhashed[index] = chunk
            self._catch_up_soon(upload_id, running)

    def hash_listed_soon(self, upload_id: UUID, listed: dict[int, tuple[int, str]]) -> None:
        """Chunks PUT straight to storage (presigned URLs) or through another API process are seen
        here when a client asks what is stored (it does, for the next upload URL): the chain reads
        them back in the background as it reaches them, as it does for chunks that came out of turn."""
        running = self._digests.get(upload_id)
        if running is None:
            if 0 not in listed:
                return
            running = self._tracked(upload_id)
        for index, (size, etag) in listed.items():
            if index >= running.next and index not in running.unhashed:
                running.unhashed[index] = HashedChunk(self._bucket.chunk_key(upload_id, index), etag, size)
        self._catch_up_soon(upload_id, running)

    def known_prefix(
        self, upload_id: UUID, total_chunks: int, listed: dict[int, tuple[int, str]]
    ) -> tuple[Any, list[HashedChunk]]:
        """The hash state and chunks of the longest prefix hashed here whose stored ETags are unchanged."""
        running = self._digests.get(upload_id)
        count = running.prefix(total_chunks, listed) if running is not None else 0
        if running is None or count == 0:
            return None, []
        known = [
            HashedChunk(self._bucket.chunk_key(upload_id, index), running.etags[index] or "", running.sizes[index])
            for index in range(count)
        ]
        return running.after[count - 1].copy(), known

    async def abandon(self, upload_id: UUID, ahead: PartsCopiedAhead) -> None:
        """Aborts the multipart upload of parts copied ahead, once no copy into it is under way."""
        await ahead.settled()
        multipart_id = await ahead.created_id()
        if multipart_id is not None:
            with contextlib.suppress(Exception):
                await self._bucket.abort(self._bucket.file_key(upload_id), multipart_id)

    def _tracked(self, upload_id: UUID) -> RunningDigest:
        running = self._digests.get(upload_id)
        if running is None:
            running = self._digests[upload_id] = RunningDigest()
            while len(self._digests) > MAX_RUNNING_DIGESTS:
                evicted_id, evicted = self._digests.popitem(last=False)
                if evicted.ahead is not None:
                    forget(asyncio.ensure_future(self.abandon(evicted_id, evicted.ahead)))
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
            forget(asyncio.ensure_future(self._catch_up(upload_id, running)))

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
                        response = await self._bucket.call(
                            self._bucket.client.get_object, Bucket=self._bucket.name, Key=chunk.key, IfMatch=chunk.etag
                        )
                        if response.get("ETag") != chunk.etag:  # a store that ignores If-Match on GET
                            response["Body"].close()
                            raise LookupError(f"chunk {index} is now {response.get('ETag')}, not {chunk.etag}")
                        size = await self._bucket.call(stream_into, response["Body"], state)
                    except Exception:
                        logger.debug("upload %s: chunk %d is left to the completion", upload_id, index, exc_info=True)
                        running.unhashed.pop(index, None)
                        return
                    running.append(state, size, chunk.etag)
                self._start_copy_ahead(upload_id, running, index, chunk)
        finally:
            running.catching_up = False

    def _start_copy_ahead(self, upload_id: UUID, running: RunningDigest, index: int, chunk: HashedChunk) -> None:
        # While a completion runs it owns the multipart upload; a copy started now would go to a new
        # one that nobody completes.
        if not self.copy_ahead or running.completing or chunk.size < MIN_PART_SIZE or index >= MAX_PARTS:
            return
        # Completed, discarded or evicted meanwhile (a PUT can outlive all three): nobody would ever
        # complete or abort a multipart upload started now.
        if self._digests.get(upload_id) is not running:
            return
        file_key = self._bucket.file_key(upload_id)
        failed = (
            running.ahead is not None
            and running.ahead.multipart_id.done()
            and (running.ahead.multipart_id.cancelled() or running.ahead.multipart_id.exception() is not None)
        )
        if running.ahead is None or failed:
            running.ahead = PartsCopiedAhead(asyncio.ensure_future(self._bucket.create_multipart(file_key)))
        ahead = running.ahead

        async def copy() -> dict[str, Any]:
            async with self.ahead_gate:
                ahead.started.add(index)
                return await self._bucket.copy_part(file_key, await ahead.multipart_id, index + 1, chunk)

        # A failed copy is only a lost head start: completing copies that chunk again.
        ahead.parts[index] = PartCopiedAhead(chunk.etag, forget(asyncio.ensure_future(copy())))
