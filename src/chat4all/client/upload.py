"""`chat4all upload FILE [--to CONVERSATION]`: a chunked upload that resumes where it stopped.

The file is read once, in order: each chunk feeds the whole file's SHA-256 (on this thread) and,
if the server lacks it, goes to a sending thread. Running the same command again after Ctrl-C, a
crash or a lost network asks the server which chunks it holds and sends only the others."""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from chat4all.client.api import Hub
from chat4all.client.chat import DEFAULT_CHANNELS, conversation_id_for, send_message
from chat4all.client.credentials import Credentials, load_credentials
from chat4all.client.errors import ClientError, FileChanged, ServerError
from chat4all.client.output import Output, human_size
from chat4all.client.paths import Directories
from chat4all.client.transfer import ChunkSender
from chat4all.client.upload_state import (
    RESTART,
    LocalFile,
    StateStore,
    UploadState,
    fresh_state,
    should_resume,
)

GONE = (403, 404, 410)  # the upload expired, or the server no longer knows it: start again


class Uploader:
    def __init__(self, hub: Hub, me: Credentials, output: Output, store: StateStore, parallel: int):
        self.hub, self.me, self.output, self.store, self.parallel = hub, me, output, store, parallel

    def upload(self, local: LocalFile, restart: bool) -> tuple[UploadState, dict[str, Any]]:
        started = time.monotonic()
        state, status = self._prepare(local, restart)
        missing = set(status["missing_chunks"]) if status["status"] == "pending" else set()
        checksum, sent = self._transfer(state, missing)
        self._complete(state, status, checksum)
        return state, {
            "file_id": state.file_id,
            "filename": local.path.name,
            "file_size": state.size,
            "checksum": checksum,
            "chunks_sent": sent,
            "total_chunks": state.total_chunks,
            "seconds": round(time.monotonic() - started, 3),
        }

    def _prepare(self, local: LocalFile, restart: bool) -> tuple[UploadState, dict[str, Any]]:
        state = self.store.load(self.me.url, self.me.username, local)
        if state is not None and should_resume(state, local, restart):
            status = self._status(state)
            if status is not None:
                missing = len(status["missing_chunks"])
                self.output.step(f"resuming upload {state.file_id}: {missing} of {state.total_chunks} chunks to send")
                return state, status
            self.output.step(f"upload {state.file_id} is gone from the server (expired?); starting again")
        state = self._initiate(local)
        return state, {"status": "pending", "missing_chunks": list(range(state.total_chunks))}

    def _status(self, state: UploadState) -> dict[str, Any] | None:
        try:
            status = self.hub.call("GET", f"/v1/files/{state.file_id}")
        except ServerError as error:
            if error.status in GONE:
                return None
            raise
        same_layout = (status["chunk_size"], status["total_chunks"]) == (state.chunk_size, state.total_chunks)
        return status if same_layout and status["status"] in ("pending", "completed") else None

    def _initiate(self, local: LocalFile) -> UploadState:
        announced: dict[str, Any] = {"filename": local.path.name, "file_size": local.size}
        content_type = mimetypes.guess_type(local.path.name)[0]
        if content_type:
            announced["content_type"] = content_type
        state = fresh_state(
            self.me.url, self.me.username, local, self.hub.call("POST", "/v1/files/initiate", json=announced)
        )
        self.store.save(state)
        chunks = f"{state.total_chunks} chunks of {human_size(state.chunk_size)}"
        self.output.step(f"upload {state.file_id} started: {human_size(state.size)} in {chunks}")
        return state

    def _transfer(self, state: UploadState, missing: set[int]) -> tuple[str, int]:
        digest = hashlib.sha256()
        held = state.size - sum(state.chunk_length(index) for index in missing)
        with (
            open(state.path, "rb") as source,
            self.output.progress(Path(state.path).name, state.size, held) as progress,
            ChunkSender(self.hub, state, self.store, progress, self.parallel) as sender,
        ):
            for index in range(state.total_chunks):
                data = read_chunk(source, state, index)
                digest.update(data)
                digest_through = digest.copy().hexdigest()
                if index in missing:
                    sender.submit(index, data, digest_through)
                else:
                    state.require_same_start(index, digest_through)
        return digest.hexdigest(), sender.count

    def _complete(self, state: UploadState, status: dict[str, Any], checksum: str) -> None:
        if status["status"] == "completed":  # an earlier attempt completed it, then stopped
            if status["checksum"] != checksum:
                raise FileChanged(f"{state.path} is not the file uploaded as {state.file_id}: {RESTART}")
            return
        try:
            self.hub.call("POST", "/v1/files/complete", json={"file_id": state.file_id, "checksum": checksum})
        except ServerError as error:
            if error.code == "checksum_mismatch":
                raise FileChanged(
                    f"the server's copy differs from {state.path} (changed while sent?): {RESTART}"
                ) from None
            raise


def read_chunk(source: BinaryIO, state: UploadState, index: int) -> bytes:
    data = source.read(state.chunk_length(index))
    if len(data) != state.chunk_length(index):
        raise FileChanged(f"{state.path} became shorter while it was read: {RESTART}")
    return data


def local_file(name: str) -> LocalFile:
    path = Path(name)
    if not path.is_file():
        raise ClientError(f"{name}: {'not a regular file' if path.exists() else 'no such file'}")
    return LocalFile.at(path)


def send_file_message(
    hub: Hub, me: Credentials, store: StateStore, state: UploadState, args: argparse.Namespace
) -> dict:
    conversation_id = conversation_id_for(hub, me, args.to)
    if state.message_id is None:
        state.message_id = str(uuid.uuid4())
        store.save(state)
    payload = {"type": "file", "file_id": state.file_id}
    return send_message(hub, me, conversation_id, payload, args.channels or DEFAULT_CHANNELS, state.message_id)


def upload(args: argparse.Namespace, output: Output, directories: Directories) -> None:
    me = load_credentials(directories)
    local = local_file(args.file)
    store = StateStore(directories.state / "uploads")
    with Hub(me.url, me.access_token, connections=args.parallel + 1) as hub:
        state, result = Uploader(hub, me, output, store, args.parallel).upload(local, args.restart)
        if args.to:
            result["message"] = send_file_message(hub, me, store, state, args)
    store.remove(state)
    text = f"uploaded {local.path.name} ({human_size(state.size)}) as file {state.file_id}, sha256 {result['checksum']}"
    if args.to:
        text += f"; message {result['message']['message_id']} {result['message']['status']}"
    output.result(result, text)
