"""Sending an upload's chunks, several at a time, each confirmed chunk recorded at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from chat4all.client.api import Hub
from chat4all.client.errors import ServerError, Unreachable
from chat4all.client.output import Progress
from chat4all.client.upload_state import StateStore, UploadState

ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
# Answers that say "not now" rather than "no": the same chunk may be sent again.
TRANSIENT_STATUSES = {408, 429, 502, 503, 504}
OCTETS = {"Content-Type": "application/octet-stream"}


def send_chunk(hub: Hub, file_id: str, index: int, data: bytes) -> None:
    """PATCHes one chunk, again after a dropped connection or a busy server (re-sending a chunk
    replaces it, so a retry is always safe); gives up after a few attempts."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            hub.call(
                "PATCH",
                "/v1/files/upload",
                params={"file_id": file_id, "chunk_id": index},
                content=data,
                headers=OCTETS,
            )
            return
        except (Unreachable, ServerError) as error:
            transient = isinstance(error, Unreachable) or error.status in TRANSIENT_STATUSES
            if attempt == ATTEMPTS or not transient:
                raise
            time.sleep(BACKOFF_SECONDS * attempt)


class ChunkSender:
    """Sends chunks on `parallel` threads. `submit` waits while that many are in flight, so at most
    `parallel` chunks (plus the one being read) are held in memory. Each chunk the server confirms
    goes into the state file before the next step, so an attempt killed at any moment loses at most
    the chunks in flight; leaving the `with` block waits for those."""

    def __init__(self, hub: Hub, state: UploadState, store: StateStore, progress: Progress, parallel: int):
        self._hub, self._state, self._store, self._progress = hub, state, store, progress
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="chunk")
        self._slots = threading.BoundedSemaphore(parallel)
        self._recording = threading.Lock()
        self._sent: list[Future[None]] = []

    def __enter__(self) -> ChunkSender:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        # On a failure or Ctrl-C, chunks not started yet are dropped; those in flight are awaited.
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)
        if kind is None:
            self._raise_first_failure()

    @property
    def count(self) -> int:
        return len(self._sent)

    def submit(self, index: int, data: bytes, digest_through: str) -> None:
        """`digest_through`: the SHA-256 of the file through this chunk, recorded once it is confirmed."""
        self._raise_first_failure()
        self._slots.acquire()
        self._raise_first_failure()
        future = self._pool.submit(self._send, index, data, digest_through)
        future.add_done_callback(lambda _: self._slots.release())
        self._sent.append(future)

    def _send(self, index: int, data: bytes, digest_through: str) -> None:
        send_chunk(self._hub, self._state.file_id, index, data)
        with self._recording:
            self._state.confirm(index, digest_through)
            self._store.save(self._state)
        self._progress.advance(len(data), f"chunk {index + 1}/{self._state.total_chunks} sent")

    def _raise_first_failure(self) -> None:
        for future in self._sent:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
