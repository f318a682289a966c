"""Completing an upload: the checksum verified, missing chunks listed, a failed commit retried, and
who may complete it when."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat4all.domain.errors import Conflict, Forbidden, Gone, InvalidInput, Unavailable
from chat4all.domain.uploads import UploadStatus
from tests.unit.upload_fixtures import (  # noqa: F401 - fixtures
    DATA,
    CommitFailsOnce,
    alice,
    mallory,
)


async def test_completion_verifies_the_checksum_and_makes_the_file_usable(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA, indices=[4, 0, 3, 1, 2])
    hub.clock.advance()
    done = await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA).upper())
    stored = await hub.upload(upload.id)
    assert stored.status is UploadStatus.COMPLETED and done.status is UploadStatus.COMPLETED
    assert stored.checksum == hub.sha256(DATA)
    assert stored.completed_at == hub.clock.now()
    assert hub.storage.files[upload.id] == DATA
    assert upload.id not in hub.storage.chunks


async def test_completion_lists_missing_chunks(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA, indices=[0, 2])
    with pytest.raises(InvalidInput) as raised:
        await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))
    assert raised.value.code == "missing_chunks"
    assert raised.value.field_errors == {"missing_chunks": ["1", "3", "4"]}
    assert "1, 3-4" in raised.value.detail
    assert (await hub.upload(upload.id)).status is UploadStatus.PENDING


async def test_checksum_mismatch_keeps_the_upload_open_until_the_bad_chunk_is_resent(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    corrupted = DATA[:4] + b"????" + DATA[8:]
    await hub.send_chunks(alice, upload, corrupted)
    with pytest.raises(InvalidInput) as raised:
        await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))
    assert raised.value.code == "checksum_mismatch"
    assert raised.value.field_errors == {"checksum": [f"stored bytes hash to {hub.sha256(corrupted)}"]}
    assert (await hub.upload(upload.id)).status is UploadStatus.PENDING
    assert upload.id not in hub.storage.files
    await hub.upload_chunk.execute(alice.id, upload.id, 1, DATA[4:8])
    await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))
    assert hub.storage.files[upload.id] == DATA
    assert (await hub.upload(upload.id)).status is UploadStatus.COMPLETED


async def test_second_completion_conflicts(hub, alice):
    upload = await hub.uploaded_file(alice, DATA)
    with pytest.raises(Conflict) as raised:
        await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))
    assert raised.value.code == "upload_completed"
    assert hub.storage.files[upload.id] == DATA


async def test_completion_whose_commit_failed_can_be_retried(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    failing = attrs.evolve(hub.complete_upload, uow=CommitFailsOnce(hub.uow))
    with pytest.raises(ConnectionError):
        await failing.execute(alice.id, upload.id, hub.sha256(DATA))
    assert (await hub.upload(upload.id)).status is UploadStatus.PENDING

    done = await failing.execute(alice.id, upload.id, hub.sha256(DATA))

    assert done.status is UploadStatus.COMPLETED
    assert (await hub.upload(upload.id)).status is UploadStatus.COMPLETED
    assert b"".join([block async for block in hub.storage.read_file(upload.id)]) == DATA
    assert upload.id not in hub.storage.chunks


async def test_completion_stands_when_dropping_the_chunks_fails(hub, alice, monkeypatch, caplog):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)

    async def unavailable(upload_id):
        raise Unavailable("object storage unavailable")

    monkeypatch.setattr(hub.storage, "release_chunks", unavailable)

    done = await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))

    assert done.status is UploadStatus.COMPLETED
    assert (await hub.upload(upload.id)).status is UploadStatus.COMPLETED
    assert hub.storage.files[upload.id] == DATA
    assert "chunks" in caplog.text  # an operator hears of the space left behind


async def test_only_the_uploader_may_complete(hub, alice, mallory):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    with pytest.raises(Forbidden):
        await hub.complete_upload.execute(mallory.id, upload.id, hub.sha256(DATA))
    assert (await hub.upload(upload.id)).status is UploadStatus.PENDING


async def test_malformed_checksum_is_rejected(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    with pytest.raises(InvalidInput) as raised:
        await hub.complete_upload.execute(alice.id, upload.id, "abc")
    assert "checksum" in raised.value.field_errors


async def test_expired_upload_cannot_be_completed(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA)
    hub.clock.advance(hub.upload_lifetime)
    with pytest.raises(Gone):
        await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(DATA))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=40), order=st.data())
async def test_chunks_in_any_order_with_repeats_assemble_the_original_file(make_hub, data, order):
    hub = make_hub()
    alice = await hub.user("alice")
    upload = await hub.start_upload(alice, data)
    indices = list(range(upload.total_chunks))
    sequence = order.draw(st.permutations(indices)) + order.draw(st.lists(st.sampled_from(indices), max_size=5))
    await hub.send_chunks(alice, upload, data, indices=sequence)
    await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(data))
    assert hub.storage.files[upload.id] == data
