"""How `chat4all upload` resumes: against an in-memory stand-in for the files API, which chunks an
attempt sends after an earlier one stopped, and what it refuses."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from chat4all.client import transfer
from chat4all.client.credentials import Credentials
from chat4all.client.errors import FileChanged, ServerError
from chat4all.client.output import Output
from chat4all.client.upload import Uploader
from chat4all.client.upload_state import LocalFile, StateStore

CHUNK = 4
DATA = b"0123456789abcdefXYZ"  # 19 bytes: 5 chunks, the last one 3 bytes long
ME = Credentials("http://hub.test", "alice", "u-1", "token", expires_at=4e9)


class FilesApi:
    """The upload endpoints, in memory: chunks kept per upload, PATCHes counted, failures planted."""

    def __init__(self) -> None:
        self.uploads: dict[str, dict[str, Any]] = {}
        self.patches: list[int] = []
        self.refuse: dict[int, ServerError] = {}  # chunk index -> the error its next PATCH gets
        self._lock = threading.Lock()

    def call(self, method: str, path: str, **options: Any) -> Any:
        with self._lock:
            if (method, path) == ("POST", "/v1/files/initiate"):
                return self._initiate(options["json"]["file_size"])
            if (method, path) == ("PATCH", "/v1/files/upload"):
                return self._chunk(options["params"]["file_id"], options["params"]["chunk_id"], options["content"])
            if (method, path) == ("POST", "/v1/files/complete"):
                return self._complete(options["json"]["file_id"], options["json"]["checksum"])
            if method == "GET":
                return self._status(path.rsplit("/", 1)[1])
        raise AssertionError(f"unexpected {method} {path}")

    def _initiate(self, size: int) -> dict[str, Any]:
        file_id = str(uuid.uuid4())
        total = -(-size // CHUNK)
        self.uploads[file_id] = {"total": total, "chunks": {}, "status": "pending", "checksum": None}
        return {"file_id": file_id, "chunk_size": CHUNK, "total_chunks": total}

    def _chunk(self, file_id: str, index: int, data: bytes) -> dict[str, Any]:
        self.patches.append(index)
        if index in self.refuse:
            raise self.refuse.pop(index)
        self.uploads[file_id]["chunks"][index] = bytes(data)
        return {"file_id": file_id, "chunk_id": index}

    def _status(self, file_id: str) -> dict[str, Any]:
        upload = self.uploads.get(file_id)
        if upload is None or upload["status"] == "expired":
            raise ServerError("the upload has expired (upload_expired)", status=410, code="upload_expired")
        missing = [index for index in range(upload["total"]) if index not in upload["chunks"]]
        return {"status": upload["status"], "chunk_size": CHUNK, "total_chunks": upload["total"],
                "missing_chunks": missing if upload["status"] == "pending" else [], "checksum": upload["checksum"]}

    def _complete(self, file_id: str, checksum: str) -> dict[str, Any]:
        upload = self.uploads[file_id]
        stored = b"".join(upload["chunks"][index] for index in range(upload["total"]))
        if hashlib.sha256(stored).hexdigest() != checksum:
            raise ServerError("checksum mismatch (checksum_mismatch)", status=400, code="checksum_mismatch")
        upload.update(status="completed", checksum=checksum, stored=stored)
        return {"file_id": file_id, "status": "completed"}


@pytest.fixture
def api() -> FilesApi:
    return FilesApi()


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "uploads")


@pytest.fixture
def file(tmp_path: Path) -> LocalFile:
    path = tmp_path / "notes.txt"
    path.write_bytes(DATA)
    return LocalFile.at(path)


def upload(api: FilesApi, store: StateStore, file: LocalFile, restart: bool = False, parallel: int = 1):
    quiet = Output(as_json=True, out=io.StringIO(), err=io.StringIO())
    return Uploader(api, ME, quiet, store, parallel).upload(LocalFile.at(file.path), restart)  # type: ignore[arg-type]


def refused() -> ServerError:
    return ServerError("no (invalid_input)", status=400, code="invalid_input")


def test_a_first_attempt_sends_every_chunk_and_completes_with_the_files_sha256(api, store, file) -> None:
    state, result = upload(api, store, file, parallel=3)
    assert sorted(api.patches) == [0, 1, 2, 3, 4]
    assert api.uploads[state.file_id]["stored"] == DATA
    assert result["checksum"] == hashlib.sha256(DATA).hexdigest() and result["chunks_sent"] == 5
    recorded = store.load(ME.url, ME.username, file).digests_through
    assert recorded == {index: hashlib.sha256(DATA[: (index + 1) * CHUNK]).hexdigest() for index in range(5)}


def test_running_again_after_a_failure_sends_only_the_chunks_the_server_lacks(api, store, file) -> None:
    api.refuse[2] = refused()
    with pytest.raises(ServerError):
        upload(api, store, file)
    assert api.patches == [0, 1, 2]
    state, result = upload(api, store, file)
    assert api.patches[3:] == [2, 3, 4]
    assert result["chunks_sent"] == 3 and api.uploads[state.file_id]["stored"] == DATA


def test_a_chunk_the_server_got_but_the_client_never_recorded_is_not_sent_again(api, store, file) -> None:
    api.refuse[3] = refused()
    with pytest.raises(ServerError):
        upload(api, store, file)
    state = store.load(ME.url, ME.username, file)
    del state.digests_through[1]  # as if killed between the server's answer and the state file
    store.save(state)
    upload(api, store, file)
    assert api.patches[4:] == [3, 4]


def test_a_file_changed_in_place_is_refused_before_anything_is_sent(api, store, file) -> None:
    api.refuse[3] = refused()
    with pytest.raises(ServerError):
        upload(api, store, file)
    sent = len(api.patches)
    file.path.write_bytes(b"X" + DATA[1:])  # same size, same time: only the bytes tell
    os.utime(file.path, ns=(file.mtime_ns, file.mtime_ns))
    with pytest.raises(FileChanged, match="its first 4 bytes differ.*--restart"):
        upload(api, store, file)
    assert len(api.patches) == sent
    state, result = upload(api, store, file, restart=True)
    assert result["chunks_sent"] == 5 and api.uploads[state.file_id]["stored"] == b"X" + DATA[1:]


def test_a_file_that_grew_is_refused_until_restarted(api, store, file) -> None:
    api.refuse[1] = refused()
    with pytest.raises(ServerError):
        upload(api, store, file)
    file.path.write_bytes(DATA + b"more")
    with pytest.raises(FileChanged, match="size differs"):
        upload(api, store, file)
    state, _ = upload(api, store, file, restart=True)
    assert api.uploads[state.file_id]["stored"] == DATA + b"more"


def test_an_upload_expired_on_the_server_starts_again(api, store, file) -> None:
    api.refuse[1] = refused()
    with pytest.raises(ServerError):
        upload(api, store, file)
    first = store.load(ME.url, ME.username, file).file_id
    api.uploads[first]["status"] = "expired"
    state, result = upload(api, store, file)
    assert state.file_id != first and result["chunks_sent"] == 5


def test_an_upload_completed_by_an_attempt_that_then_stopped_is_not_sent_again(api, store, file) -> None:
    state, _ = upload(api, store, file)
    again, result = upload(api, store, file)  # its state file was not removed yet
    assert again.file_id == state.file_id and result["chunks_sent"] == 0 and len(api.patches) == 5


def test_a_busy_server_or_a_dropped_connection_is_retried(api, store, file, monkeypatch) -> None:
    monkeypatch.setattr(transfer, "BACKOFF_SECONDS", 0)
    api.refuse[2] = ServerError("busy (too_many_connections)", status=503, code="too_many_connections")
    state, result = upload(api, store, file)
    assert api.patches == [0, 1, 2, 2, 3, 4]
    assert api.uploads[state.file_id]["stored"] == DATA
