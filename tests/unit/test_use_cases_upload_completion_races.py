"""Completions that race or are retried: the file is stored once, and bytes other than the stored
ones never replace it, on each storage."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from chat4all.adapters.storage.local import LocalFileStorage
from chat4all.domain.errors import Conflict
from chat4all.domain.uploads import UploadStatus
from tests.unit.conftest import build_hub
from tests.unit.upload_fixtures import (  # noqa: F401 - fixtures
    DATA,
    CommitFailsOnce,
    alice,
)


async def test_concurrent_completions_complete_once_and_the_others_conflict(hub, alice, monkeypatch):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    released: list[object] = []
    release = hub.storage.release_chunks

    async def counting(upload_id):
        released.append(upload_id)
        await release(upload_id)

    monkeypatch.setattr(hub.storage, "release_chunks", counting)

    outcomes = await asyncio.gather(
        *(hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA)) for _ in range(3)),
        return_exceptions=True,
    )

    completed = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert len(completed) == 1 and completed[0].status is UploadStatus.COMPLETED
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert [(type(error), error.code) for error in conflicts] == [(Conflict, "upload_completed")] * 2
    assert hub.storage.files[upload.id] == DATA
    assert upload.id not in hub.storage.chunks
    assert released and set(released) == {upload.id}


async def test_a_completion_overtaken_by_another_conflicts_instead_of_missing_chunks(hub, alice, monkeypatch):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    stored_chunks = hub.storage.stored_chunks

    async def overtaken(upload_id):
        # Another request completes the upload, chunks released and all, after this one loaded it.
        monkeypatch.setattr(hub.storage, "stored_chunks", stored_chunks)
        await hub.complete_upload.execute(alice.id, upload_id, hub.sha256(DATA))
        return await stored_chunks(upload_id)

    monkeypatch.setattr(hub.storage, "stored_chunks", overtaken)

    with pytest.raises(Conflict) as raised:
        await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))

    assert raised.value.code == "upload_completed"
    assert hub.storage.files[upload.id] == DATA


async def test_a_retry_after_a_lost_answer_releases_the_chunks_left_behind(hub, alice, monkeypatch):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    release = hub.storage.release_chunks

    async def stopped(upload_id):
        raise ConnectionError("process stopped after the commit")

    monkeypatch.setattr(hub.storage, "release_chunks", stopped)
    await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))
    assert upload.id in hub.storage.chunks
    monkeypatch.setattr(hub.storage, "release_chunks", release)

    with pytest.raises(Conflict) as raised:
        await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))

    assert raised.value.code == "upload_completed"
    assert upload.id not in hub.storage.chunks
    assert hub.storage.files[upload.id] == DATA


@pytest.fixture(params=["in_memory", "local_disk"])
def hub_on_each_storage(request, tmp_path):
    hub = build_hub()
    if request.param == "local_disk":
        hub = attrs.evolve(hub, storage=LocalFileStorage(tmp_path))
    return hub


async def stored_file(hub, upload_id) -> bytes:
    return b"".join([block async for block in hub.storage.read_file(upload_id)])


async def test_a_completion_with_other_bytes_cannot_replace_the_file_of_one_being_recorded(
    hub_on_each_storage, monkeypatch
):
    hub = hub_on_each_storage
    alice = await hub.user("alice")
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    other = DATA[:4] + b"????" + DATA[8:]
    assemble = hub.storage.assemble_if_matches
    first_assembled, second_assembled = asyncio.Event(), asyncio.Event()

    async def interleaved(upload_id, total_chunks, checksum):
        # The first completion stores its file and records it only after the second stored its
        # own; the second records only after the first did.
        if checksum == hub.sha256(DATA):
            actual = await assemble(upload_id, total_chunks, checksum)
            first_assembled.set()
            await second_assembled.wait()
            return actual
        try:
            actual = await assemble(upload_id, total_chunks, checksum)
        finally:
            second_assembled.set()
        await first
        return actual

    monkeypatch.setattr(hub.storage, "assemble_if_matches", interleaved)
    first = asyncio.ensure_future(hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA)))
    await first_assembled.wait()
    await hub.upload_chunk.execute(alice.id, upload.id, 1, other[4:8])

    with pytest.raises(Conflict) as raised:
        await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(other))

    assert raised.value.code == "upload_completed"
    assert (await first).status is UploadStatus.COMPLETED
    recorded = await hub.upload(upload.id)
    assert recorded.checksum == hub.sha256(DATA)
    assert await stored_file(hub, upload.id) == DATA


async def test_a_retry_of_a_completion_whose_commit_failed_keeps_the_stored_file(hub_on_each_storage):
    hub = hub_on_each_storage
    alice = await hub.user("alice")
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    failing = attrs.evolve(hub.complete_upload, uow=CommitFailsOnce(hub.uow))
    with pytest.raises(ConnectionError):
        await failing.execute(alice.id, upload.id, hub.sha256(DATA))

    done = await failing.execute(alice.id, upload.id, hub.sha256(DATA))

    assert done.status is UploadStatus.COMPLETED and done.checksum == hub.sha256(DATA)
    assert await stored_file(hub, upload.id) == DATA
    assert await hub.storage.stored_chunks(upload.id) == {}


async def test_after_a_commit_failed_only_the_stored_bytes_can_complete_the_upload(hub_on_each_storage):
    hub = hub_on_each_storage
    alice = await hub.user("alice")
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    with pytest.raises(ConnectionError):
        await attrs.evolve(hub.complete_upload, uow=CommitFailsOnce(hub.uow)).execute(
            alice.id, upload.id, hub.sha256(DATA)
        )
    other = DATA[:4] + b"????" + DATA[8:]
    await hub.upload_chunk.execute(alice.id, upload.id, 1, other[4:8])

    with pytest.raises(Conflict) as raised:
        await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(other))

    assert raised.value.code == "upload_completed"
    assert "different checksum" in raised.value.detail
    assert (await hub.upload(upload.id)).status is UploadStatus.PENDING
    assert await stored_file(hub, upload.id) == DATA
    # The stored file is the one a completion verified: sending its bytes again completes the upload.
    await hub.upload_chunk.execute(alice.id, upload.id, 1, DATA[4:8])
    done = await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))
    assert done.status is UploadStatus.COMPLETED and done.checksum == hub.sha256(DATA)
    assert await stored_file(hub, upload.id) == DATA
