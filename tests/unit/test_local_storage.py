"""LocalFileStorage: chunks resent and discarded, files read in blocks or from a byte on, paths made
only from ids, its health check, and its I/O on the given executor."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from uuid import uuid4

import pytest

from chat4all.adapters.storage.local import LocalFileStorage
from chat4all.domain.errors import NotFound, Unavailable
from tests.unit.local_storage_fixtures import (  # noqa: F401 - fixtures
    MiB,
    leftovers,
    read_all,
    sha256,
    storage,
)


async def test_a_resent_chunk_replaces_the_old_one(storage: LocalFileStorage) -> None:
    upload_id = uuid4()
    await storage.begin(upload_id)
    await storage.put_chunk(upload_id, 0, b"first")
    await storage.put_chunk(upload_id, 0, b"again!")

    assert await storage.stored_chunks(upload_id) == {0: 6}
    assert await storage.assemble_if_matches(upload_id, 1, sha256(b"again!")) == sha256(b"again!")
    assert await read_all(storage, upload_id) == b"again!"


async def test_discard_removes_the_chunks_and_tolerates_a_missing_upload(storage: LocalFileStorage, tmp_path: Path) -> None:
    upload_id = uuid4()
    await storage.begin(upload_id)
    await storage.put_chunk(upload_id, 0, b"data")

    await storage.discard(upload_id)
    await storage.discard(upload_id)
    await storage.discard(uuid4())

    assert await storage.stored_chunks(upload_id) == {}
    assert leftovers(tmp_path) == []


async def test_read_file_streams_blocks_of_one_mebibyte(storage: LocalFileStorage) -> None:
    upload_id = uuid4()
    data = os.urandom(2 * MiB + 1)
    await storage.put_chunk(upload_id, 0, data)
    await storage.assemble_if_matches(upload_id, 1, sha256(data))

    blocks = [block async for block in storage.read_file(upload_id)]

    assert [len(block) for block in blocks] == [MiB, MiB, 1]
    assert b"".join(blocks) == data


async def test_read_file_from_a_byte_onwards_resumes_a_download(storage: LocalFileStorage) -> None:
    upload_id = uuid4()
    data = os.urandom(MiB + 100)
    await storage.put_chunk(upload_id, 0, data)
    await storage.assemble_if_matches(upload_id, 1, sha256(data))

    rest = b"".join([block async for block in storage.read_file(upload_id, start=MiB - 3)])

    assert rest == data[MiB - 3 :]


async def test_read_file_of_an_unknown_file_is_not_found(storage: LocalFileStorage) -> None:
    with pytest.raises(NotFound):
        await read_all(storage, uuid4())


async def test_no_urls_because_the_api_serves_the_bytes(storage: LocalFileStorage) -> None:
    assert storage.chunk_upload_url(uuid4(), 0, 10) is None
    assert storage.download_url(uuid4(), "report.pdf") is None


async def test_paths_come_only_from_uuids_and_integers(storage: LocalFileStorage) -> None:
    with pytest.raises(TypeError):
        await storage.put_chunk("../../etc", 0, b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await storage.put_chunk(uuid4(), -1, b"x")
    with pytest.raises(ValueError):
        await storage.put_chunk(uuid4(), "0/../x", b"x")  # type: ignore[arg-type]


async def test_check_passes_on_a_writable_directory(storage: LocalFileStorage) -> None:
    await storage.check()


async def test_check_fails_when_the_directory_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(Unavailable):
        await LocalFileStorage(blocker / "storage").check()


async def test_io_runs_on_the_given_executor(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    used: list[str] = []

    class RecordingExecutor(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            used.append(getattr(fn, "func", fn).__name__)
            return super().submit(fn, *args, **kwargs)

    with RecordingExecutor(max_workers=1) as executor:
        storage = LocalFileStorage(tmp_path, executor=executor)
        upload_id = uuid4()
        await storage.put_chunk(upload_id, 0, b"abc")
        await storage.assemble_if_matches(upload_id, 1, sha256(b"abc"))

    assert used == ["_put_chunk", "_assemble"]


async def test_concurrent_resends_of_one_chunk_leave_one_whole_version(storage: LocalFileStorage, tmp_path: Path) -> None:
    upload_id = uuid4()
    versions = [bytes([value]) * (256 * 1024) for value in range(8)]
    await asyncio.gather(*(storage.put_chunk(upload_id, 0, version) for version in versions))

    assert await storage.stored_chunks(upload_id) == {0: 256 * 1024}
    assert (tmp_path / "uploads" / str(upload_id) / "0.part").read_bytes() in versions
    assert leftovers(tmp_path) == [tmp_path / "uploads" / str(upload_id) / "0.part"]
