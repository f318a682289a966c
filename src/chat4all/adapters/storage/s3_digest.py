"""What one API process knows of one S3 upload while its chunks arrive: the running SHA-256 of the
chunks stored in order (`RunningDigest`), and the multipart upload of the final file that each
chunk hashed is copied into at once (`PartsCopiedAhead`). `s3_running.RunningDigests` keeps them,
one per upload, and does the work that extends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

from chat4all.adapters.storage.s3_bucket import HashedChunk


@attrs.frozen
class PartCopiedAhead:
    source_etag: str
    # The {"PartNumber", "ETag"} entry CompleteMultipartUpload needs, once the copy succeeded.
    copy: asyncio.Future[dict[str, Any]]


class PartsCopiedAhead:
    """One multipart upload of the final file, filled while chunks arrive."""

    def __init__(self, multipart_id: asyncio.Future[str]):
        self.multipart_id = multipart_id
        self.parts: dict[int, PartCopiedAhead] = {}
        self.started: set[int] = set()

    def usable_part(self, index: int, source_etag: str) -> asyncio.Future[dict[str, Any]] | None:
        """The finished copy of chunk `index`, if it succeeded and was made from the bytes with `source_etag`."""
        part = self.parts.get(index)
        if part is None or part.source_etag != source_etag or not part.copy.done():
            return None
        if part.copy.cancelled() or part.copy.exception() is not None:
            return None
        return part.copy

    async def settled(self) -> None:
        """Cancels the copies still queued (completing copies those faster, several at once) and waits
        for the ones under way, so none lands after completing has chosen its parts."""
        for index, part in self.parts.items():
            if index not in self.started:
                part.copy.cancel()
        await asyncio.gather(*(part.copy for part in self.parts.values()), return_exceptions=True)

    async def created_id(self) -> str | None:
        """The id of the multipart upload, or None if creating it failed."""
        with contextlib.suppress(Exception):
            return await self.multipart_id
        return None


class RunningDigest:
    """The SHA-256 of chunks 0..k-1 of one upload as this process stored them, and what hangs off
    it: the parts copied ahead, the chunks waiting to be read back, whether a completion runs.

    `after[i]` is the hash state after chunk i; `etags[i]` is the ETag S3 answered to the PUT of
    exactly those bytes (None until that PUT succeeded). A chunk is hashed only in its turn, right
    after its predecessor; one that cannot get its turn blocks the chain at its index."""

    def __init__(self) -> None:
        self.after: list[Any] = []
        self.etags: list[str | None] = []
        self.sizes: list[int] = []
        self.busy = False
        self.waiting: Counter[int] = Counter()
        self.blocked_at: int | None = None
        self.ahead: PartsCopiedAhead | None = None
        # Chunks this process stored at or past the chain's end without hashing them (they came
        # before a predecessor): read back and hashed in the background once the chain reaches them.
        self.unhashed: dict[int, HashedChunk] = {}
        self.catching_up = False
        self.completing = False
        self._changed: asyncio.Future[None] | None = None

    @property
    def next(self) -> int:
        return len(self.after)

    def wait_for_change(self) -> asyncio.Future[None]:
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def notify(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    @contextlib.contextmanager
    def extending(self) -> Iterator[Any]:
        """Holds the chain while the next chunk is hashed into a copy of its last state (yielded);
        whoever holds it `append`s the result, then the chain is free again for the others."""
        self.busy = True
        try:
            yield self.after[-1].copy() if self.after else hashlib.sha256()
        finally:
            self.busy = False
            self.notify()

    def append(self, state: Any, size: int, etag: str | None = None) -> None:
        self.unhashed.pop(self.next, None)
        self.after.append(state)
        self.etags.append(etag)
        self.sizes.append(size)
        if self.blocked_at is not None and self.next > self.blocked_at:
            self.blocked_at = None

    def prefix(self, total_chunks: int, listed: dict[int, tuple[int, str]]) -> int:
        """How many leading chunks are stored exactly as they were hashed here."""
        count = 0
        while count < min(total_chunks, self.next):
            etag = self.etags[count]
            if etag is None or listed.get(count) != (self.sizes[count], etag):
                break
            count += 1
        return count

    def claim_ahead(self) -> PartsCopiedAhead | None:
        """Hands the copied-ahead parts to one completion; no copies start until it is over."""
        ahead, self.ahead = self.ahead, None
        self.completing = True
        return ahead


