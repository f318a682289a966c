"""LocalFileStorage joins chunks into the file: in any order, verified, stored once and never
replaced by other bytes, and refused where the filesystem cannot do it safely."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat4all.adapters.storage.local import LocalFileStorage
from chat4all.domain.errors import Conflict, Unavailable
from tests.unit.local_storage_fixtures import (  # noqa: F401 - fixtures
    MiB,
    leftovers,
    read_all,
    sha256,
    storage,
)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def after_hashing(monkeypatch: pytest.MonkeyPatch, count: int, action: Callable[[], object]) -> None:
    """Runs `action` once an assembly has hashed its `count`-th chunk, before it goes on."""
    import chat4all.adapters.storage.local as local

    hash_into = local._hash_into
    hashed = 0

    def hash_then_act(chunk, digest, buffer):
        nonlocal hashed
        size = hash_into(chunk, digest, buffer)
        hashed += 1
        if hashed == count:
            action()
        return size

    monkeypatch.setattr(local, "_hash_into", hash_then_act)


async def test_chunks_in_any_order_assemble_into_the_file(storage: LocalFileStorage, tmp_path: Path) -> None:
    upload_id = uuid4()
    data = os.urandom(3 * MiB + 123)
    chunks = split(data, MiB)
    await storage.begin(upload_id)
    for index in (3, 1, 0, 2):
        await storage.put_chunk(upload_id, index, chunks[index])

    assert await storage.stored_chunks(upload_id) == {0: MiB, 1: MiB, 2: MiB, 3: 123}
    assert await storage.assemble_if_matches(upload_id, 4, sha256(data)) == sha256(data)

    assert (tmp_path / "files" / str(upload_id)).read_bytes() == data
    assert await storage.file_exists(upload_id)
    # Kept until the completion is recorded and releases them, so a failed commit can be retried.
    assert await storage.stored_chunks(upload_id) == {0: MiB, 1: MiB, 2: MiB, 3: 123}

    await storage.release_chunks(upload_id)

    assert await storage.stored_chunks(upload_id) == {}
    assert not (tmp_path / "uploads" / str(upload_id)).exists()
    assert leftovers(tmp_path) == [tmp_path / "files" / str(upload_id)]


async def test_assembling_again_with_the_same_bytes_keeps_the_stored_file(storage: LocalFileStorage, tmp_path: Path) -> None:
    # A retry of a completion whose commit failed.
    upload_id = uuid4()
    data = os.urandom(2 * MiB + 7)
    for index, chunk in enumerate(split(data, MiB)):
        await storage.put_chunk(upload_id, index, chunk)
    assert await storage.assemble_if_matches(upload_id, 3, sha256(data)) == sha256(data)
    final = tmp_path / "files" / str(upload_id)
    first = final.stat().st_ino

    assert await storage.assemble_if_matches(upload_id, 3, sha256(data)) == sha256(data)

    assert final.stat().st_ino == first
    assert await read_all(storage, upload_id) == data
    assert await storage.stored_chunks(upload_id) == {0: MiB, 1: MiB, 2: 7}
    assert [path for path in leftovers(tmp_path) if path.parent.name == "files"] == [final]


async def test_assembling_other_bytes_over_a_stored_file_conflicts_and_keeps_it(
    storage: LocalFileStorage, tmp_path: Path
) -> None:
    upload_id = uuid4()
    data = os.urandom(2 * MiB + 7)
    for index, chunk in enumerate(split(data, MiB)):
        await storage.put_chunk(upload_id, index, chunk)
    assert await storage.assemble_if_matches(upload_id, 3, sha256(data)) == sha256(data)
    resent = os.urandom(MiB)
    await storage.put_chunk(upload_id, 1, resent)
    other = data[:MiB] + resent + data[2 * MiB :]

    with pytest.raises(Conflict) as raised:
        await storage.assemble_if_matches(upload_id, 3, sha256(other))

    assert raised.value.code == "upload_completed"
    assert await read_all(storage, upload_id) == data
    final = tmp_path / "files" / str(upload_id)
    assert [path for path in leftovers(tmp_path) if path.parent.name == "files"] == [final]
    # Bytes that do not match what was asked for are still only a mismatch.
    assert await storage.assemble_if_matches(upload_id, 3, sha256(data)) == sha256(other)
    assert await read_all(storage, upload_id) == data


async def test_of_concurrent_assemblies_with_other_bytes_the_first_stored_stands(
    storage: LocalFileStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    data = os.urandom(MiB + 10)
    for index, chunk in enumerate(split(data, MiB)):
        await storage.put_chunk(upload_id, index, chunk)
    other = os.urandom(MiB + 10)

    def another_completion_stores_first() -> None:
        # Once this assembly has hashed every chunk, another one (of bytes re-sent meanwhile)
        # stores the file: the check for a stored file cannot be made before writing it.
        final = tmp_path / "files" / str(upload_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        final.write_bytes(other)

    after_hashing(monkeypatch, 2, another_completion_stores_first)

    with pytest.raises(Conflict) as raised:
        await storage.assemble_if_matches(upload_id, 2, sha256(data))

    assert raised.value.code == "upload_completed"
    assert await read_all(storage, upload_id) == other


async def test_releasing_chunks_twice_or_of_an_unknown_upload_is_fine(storage: LocalFileStorage, tmp_path: Path) -> None:
    upload_id = uuid4()
    await storage.put_chunk(upload_id, 0, b"abc")
    assert await storage.assemble_if_matches(upload_id, 1, sha256(b"abc")) == sha256(b"abc")

    await asyncio.gather(storage.release_chunks(upload_id), storage.release_chunks(upload_id))
    await storage.release_chunks(upload_id)
    await storage.release_chunks(uuid4())

    assert await storage.stored_chunks(upload_id) == {}
    assert await read_all(storage, upload_id) == b"abc"
    assert leftovers(tmp_path) == [tmp_path / "files" / str(upload_id)]


async def test_assembling_after_the_chunks_were_released_reports_the_upload_completed(storage: LocalFileStorage) -> None:
    upload_id = uuid4()
    await storage.put_chunk(upload_id, 0, b"once")
    await storage.assemble_if_matches(upload_id, 1, sha256(b"once"))
    await storage.release_chunks(upload_id)

    with pytest.raises(Conflict) as raised:
        await storage.assemble_if_matches(upload_id, 1, sha256(b"once"))

    assert raised.value.code == "upload_completed"
    assert await read_all(storage, upload_id) == b"once"


async def test_mismatch_keeps_the_chunks_and_stores_no_file(storage: LocalFileStorage, tmp_path: Path) -> None:
    upload_id = uuid4()
    await storage.begin(upload_id)
    await storage.put_chunk(upload_id, 0, b"hello ")
    await storage.put_chunk(upload_id, 1, b"wrold")

    actual = await storage.assemble_if_matches(upload_id, 2, sha256(b"hello world"))

    assert actual == sha256(b"hello wrold")
    assert not await storage.file_exists(upload_id)
    assert await storage.stored_chunks(upload_id) == {0: 6, 1: 5}
    assert not list((tmp_path / "files").iterdir())

    await storage.put_chunk(upload_id, 1, b"world")
    assert await storage.assemble_if_matches(upload_id, 2, sha256(b"hello world")) == sha256(b"hello world")
    assert await read_all(storage, upload_id) == b"hello world"


async def test_checksum_comparison_ignores_case(storage: LocalFileStorage) -> None:
    upload_id = uuid4()
    await storage.put_chunk(upload_id, 0, b"abc")
    assert await storage.assemble_if_matches(upload_id, 1, sha256(b"abc").upper()) == sha256(b"abc")
    assert await storage.file_exists(upload_id)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=1, max_size=4096),
    chunk_size=st.integers(min_value=1, max_value=700),
    order=st.randoms(use_true_random=False),
    repeats=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
)
def test_any_order_with_repeats_assembles_exactly_the_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk_size: int, order, repeats: list[int]
) -> None:
    base = tmp_path_factory.mktemp("storage")
    storage = LocalFileStorage(base)
    chunks = split(data, chunk_size)
    sends = list(range(len(chunks))) + [repeat % len(chunks) for repeat in repeats]
    order.shuffle(sends)

    async def scenario() -> tuple[str, bytes]:
        upload_id = uuid4()
        await storage.begin(upload_id)
        for index in sends:
            await storage.put_chunk(upload_id, index, chunks[index])
        digest = await storage.assemble_if_matches(upload_id, len(chunks), sha256(data))
        return digest, await read_all(storage, upload_id)

    digest, stored = asyncio.run(scenario())

    assert digest == sha256(data)
    assert stored == data


async def test_a_chunk_resent_while_completing_cannot_slip_in(
    storage: LocalFileStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_id = uuid4()
    chunks = [os.urandom(MiB), os.urandom(MiB), os.urandom(1000)]
    whole = b"".join(chunks)
    for index, chunk in enumerate(chunks):
        await storage.put_chunk(upload_id, index, chunk)

    # Chunk 1 replaced between hashing it and copying it.
    after_hashing(monkeypatch, 2, lambda: storage._put_chunk(tmp_path / "uploads" / str(upload_id), 1, os.urandom(MiB)))

    assert await storage.assemble_if_matches(upload_id, 3, sha256(whole)) == sha256(whole)
    assert await read_all(storage, upload_id) == whole


async def test_assembles_without_kernel_copies(
    storage: LocalFileStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    upload_id = uuid4()
    data = os.urandom(2 * MiB + 5)
    for index, chunk in enumerate(split(data, MiB)):
        await storage.put_chunk(upload_id, index, chunk)

    assert await storage.assemble_if_matches(upload_id, 3, sha256(data)) == sha256(data)
    assert await read_all(storage, upload_id) == data
    await storage.release_chunks(upload_id)
    assert leftovers(tmp_path) == [tmp_path / "files" / str(upload_id)]


async def test_a_filesystem_without_hard_links_answers_unavailable_and_names_the_fix(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def no_links(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    upload_id = uuid4()
    await storage.put_chunk(upload_id, 0, b"bytes")
    with pytest.raises(Unavailable, match="hard-link"):
        await storage.assemble_if_matches(upload_id, 1, hashlib.sha256(b"bytes").hexdigest())
    assert await storage.stored_chunks(upload_id) == {0: 5}
