"""Starting an upload and sending its chunks: the layout, the limits, who may send, and what a
resent chunk does."""

from __future__ import annotations

import hashlib

import pytest

from chat4all.domain.errors import Conflict, Forbidden, Gone, InvalidInput, TooLarge
from chat4all.domain.uploads import MAX_FILE_SIZE, UploadStatus
from tests.unit.upload_fixtures import (  # noqa: F401 - fixtures
    DATA,
    alice,
    mallory,
)


async def test_initiated_upload_is_pending_with_its_layout_and_deadline(hub, alice):
    upload = await hub.initiate_upload.execute(alice.id, "notes.txt", len(DATA), None)
    stored = await hub.upload(upload.id)
    assert stored.status is UploadStatus.PENDING
    assert stored.owner_id == alice.id
    assert stored.content_type == "application/octet-stream"
    assert (stored.total_chunks, stored.chunk_size) == (5, hub.chunk_size)
    assert stored.expires_at == hub.clock.now() + hub.upload_lifetime


async def test_file_of_exactly_2_gib_may_be_uploaded(hub, alice):
    upload = await hub.initiate_upload.execute(alice.id, "disk.img", MAX_FILE_SIZE, "application/octet-stream")
    assert upload.file_size == MAX_FILE_SIZE


async def test_file_over_2_gib_is_too_large(hub, alice):
    with pytest.raises(TooLarge) as raised:
        await hub.initiate_upload.execute(alice.id, "disk.img", MAX_FILE_SIZE + 1, None)
    assert raised.value.code == "file_too_large"
    assert hub.store.uploads == {}


@pytest.mark.parametrize(
    "filename, size, content_type",
    [("../x", 10, None), ("ok.txt", 0, None), ("ok.txt", -5, None), ("ok.txt", 10, "not a type"), ("a\x00b", 10, None)],
)
async def test_invalid_initiation_is_rejected(hub, alice, filename, size, content_type):
    with pytest.raises(InvalidInput):
        await hub.initiate_upload.execute(alice.id, filename, size, content_type)
    assert hub.store.uploads == {}


async def test_chunk_of_the_wrong_size_is_rejected(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    for index, data in [(0, b"012"), (0, b"01234"), (4, b"XYZW")]:
        with pytest.raises(InvalidInput) as raised:
            await hub.upload_chunk.execute(alice.id, upload.id, index, data)
        assert raised.value.code == "invalid_chunk_size"
    assert await hub.storage.stored_chunks(upload.id) == {}


@pytest.mark.parametrize("index", [-1, 5])
async def test_chunk_index_outside_the_file_is_rejected(hub, alice, index):
    upload = await hub.start_upload(alice, DATA)
    with pytest.raises(InvalidInput) as raised:
        await hub.upload_chunk.execute(alice.id, upload.id, index, b"0123")
    assert raised.value.code == "invalid_chunk_id"
    with pytest.raises(InvalidInput):
        await hub.upload_chunk.expected_size(alice.id, upload.id, index)


async def test_expected_chunk_size_is_announced(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    assert await hub.upload_chunk.expected_size(alice.id, upload.id, 0) == 4
    assert await hub.upload_chunk.expected_size(alice.id, upload.id, 4) == 3


async def test_only_the_uploader_may_send_chunks(hub, alice, mallory):
    upload = await hub.start_upload(alice, DATA)
    with pytest.raises(Forbidden):
        await hub.upload_chunk.execute(mallory.id, upload.id, 0, b"0123")
    assert await hub.storage.stored_chunks(upload.id) == {}


async def test_no_chunks_after_completion(hub, alice):
    upload = await hub.uploaded_file(alice, DATA)
    with pytest.raises(Conflict) as raised:
        await hub.upload_chunk.execute(alice.id, upload.id, 0, b"0123")
    assert raised.value.code == "upload_completed"


async def test_no_chunks_after_expiry(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    hub.clock.advance(hub.upload_lifetime)
    with pytest.raises(Gone) as raised:
        await hub.upload_chunk.execute(alice.id, upload.id, 0, b"0123")
    assert raised.value.code == "upload_expired"


async def test_chunks_are_recorded_once_and_a_resent_chunk_replaces_the_old_bytes(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    await hub.upload_chunk.execute(alice.id, upload.id, 2, b"????")
    await hub.upload_chunk.execute(alice.id, upload.id, 2, b"89ab")
    assert (await hub.upload(upload.id)).received_chunks == {2}
    assert hub.storage.chunks[upload.id] == {2: b"89ab"}


async def test_a_checked_upload_is_not_loaded_again(hub, alice, monkeypatch):
    from tests.fakes.repositories import InMemoryUploadRepository

    upload = await hub.start_upload(alice, DATA)
    checked = await hub.upload_chunk.check(alice.id, upload.id, 1)
    assert checked.layout.expected_size(1) == 4
    loads: list[bool] = []
    get = InMemoryUploadRepository.get

    async def counting(self, upload_id, *, for_update=False):
        loads.append(for_update)
        return await get(self, upload_id, for_update=for_update)

    monkeypatch.setattr(InMemoryUploadRepository, "get", counting)

    await hub.upload_chunk.execute(alice.id, upload.id, 1, b"4567", checked=checked)

    assert loads == [True]  # only the locked read that records the chunk
    assert hub.storage.chunks[upload.id] == {1: b"4567"}


async def test_a_checked_upload_is_still_checked(hub, alice, mallory):
    upload = await hub.start_upload(alice, DATA)
    checked = await hub.upload_chunk.check(alice.id, upload.id, 0)
    with pytest.raises(Forbidden):
        await hub.upload_chunk.execute(mallory.id, upload.id, 0, b"0123", checked=checked)
    with pytest.raises(InvalidInput):
        await hub.upload_chunk.execute(alice.id, upload.id, 0, b"012", checked=checked)
    hub.clock.advance(hub.upload_lifetime)
    with pytest.raises(Gone):
        await hub.upload_chunk.execute(alice.id, upload.id, 0, b"0123", checked=checked)
    assert await hub.storage.stored_chunks(upload.id) == {}


async def test_completion_after_the_check_still_refuses_the_chunk(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    checked = await hub.upload_chunk.check(alice.id, upload.id, 0)
    for index in range(upload.total_chunks):
        await hub.upload_chunk.execute(alice.id, upload.id, index, DATA[index * 4 : index * 4 + 4])
    await hub.complete_upload.execute(alice.id, upload.id, hashlib.sha256(DATA).hexdigest())

    with pytest.raises(Conflict) as raised:
        await hub.upload_chunk.execute(alice.id, upload.id, 0, b"0123", checked=checked)
    assert raised.value.code == "upload_completed"
