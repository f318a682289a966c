from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat4all.adapters.storage.local import LocalFileStorage
from chat4all.application.downloads import ByteRange
from chat4all.domain.errors import Conflict, Forbidden, Gone, InvalidInput, RangeNotSatisfiable, TooLarge, Unavailable
from chat4all.domain.uploads import MAX_FILE_SIZE, UploadStatus, attachment_disposition
from tests.unit.conftest import build_hub

DATA = b"0123456789abcdefXYZ"  # 19 bytes: chunks of 4, the last one 3 bytes long


@pytest.fixture
async def alice(hub):
    return await hub.user("alice")


@pytest.fixture
async def mallory(hub):
    return await hub.user("mallory")


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


# --- chunks ----------------------------------------------------------------------------------


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


# --- completion ------------------------------------------------------------------------------


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


class CommitFailsOnce:
    """A unit-of-work factory whose first commit fails, as when the database restarts mid-request."""

    def __init__(self, inner):
        self.inner = inner
        self.failed = False

    def __call__(self):
        uow = self.inner()
        committed = uow.commit

        async def commit():
            if not self.failed:
                self.failed = True
                raise ConnectionError("database went away")
            await committed()

        uow.commit = commit
        return uow


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


# --- viewing ---------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sent=st.sets(st.integers(0, 4)))
async def test_view_shows_what_is_still_missing(make_hub, sent):
    hub = make_hub()
    alice = await hub.user("alice")
    upload = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, upload, DATA, indices=sorted(sent))
    view = await hub.view_upload.execute(alice.id, upload.id)
    assert view.missing_chunks == sorted({0, 1, 2, 3, 4} - sent)
    assert view.upload.received_chunks == sent
    assert view.download_url is None


async def test_view_of_a_completed_upload_has_nothing_missing(hub, alice):
    upload = await hub.uploaded_file(alice, DATA)
    view = await hub.view_upload.execute(alice.id, upload.id)
    assert view.missing_chunks == [] and view.upload.status is UploadStatus.COMPLETED
    assert (await hub.view_upload.readable(alice.id, upload.id)).id == upload.id


async def test_pending_upload_is_not_readable(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    with pytest.raises(Conflict) as raised:
        await hub.view_upload.readable(alice.id, upload.id)
    assert raised.value.code == "file_not_completed"


async def test_outsiders_may_not_view_an_upload(hub, alice, mallory):
    upload = await hub.uploaded_file(alice, DATA)
    with pytest.raises(Forbidden) as raised:
        await hub.view_upload.execute(mallory.id, upload.id)
    assert raised.value.code == "file_forbidden"


async def test_viewing_an_expired_pending_upload_is_gone(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    hub.clock.advance(hub.upload_lifetime)
    with pytest.raises(Gone):
        await hub.view_upload.execute(alice.id, upload.id)


# --- the next chunk and downloads --------------------------------------------------------------


def chunk_of(data: bytes, index: int, asked: list[int]):
    async def read(size: int) -> bytes:
        asked.append(size)
        return data[index * 4 : index * 4 + size]

    return read


async def test_the_next_chunk_is_the_first_missing_one_after_the_chunk_just_sent(hub, alice):
    started = await hub.initiate_upload.start(alice.id, "notes.txt", len(DATA), None)
    assert (started.next_chunk.index, started.next_chunk.direct_url) == (0, None)
    upload_id, asked, after = started.upload.id, [], {}
    for index in (2, 3, 4, 0):
        progress = await hub.upload_chunk.receive(alice.id, upload_id, index, chunk_of(DATA, index, asked))
        after[index] = progress.next_chunk.index
    assert after == {2: 3, 3: 4, 4: 0, 0: 1}  # past the last chunk, the first still missing
    assert asked == [4, 4, 3, 4]  # each chunk read at exactly its expected size
    assert (await hub.view_upload.execute(alice.id, upload_id)).next_chunk.index == 1
    done = await hub.upload_chunk.receive(alice.id, upload_id, 1, chunk_of(DATA, 1, asked))
    assert done.next_chunk is None


async def test_a_chunk_the_caller_may_not_send_is_refused_before_its_body_is_read(hub, alice, mallory):
    upload = await hub.start_upload(alice, DATA)
    asked: list[int] = []
    with pytest.raises(Forbidden):
        await hub.upload_chunk.receive(mallory.id, upload.id, 0, chunk_of(DATA, 0, asked))
    with pytest.raises(InvalidInput):
        await hub.upload_chunk.receive(alice.id, upload.id, 5, chunk_of(DATA, 5, asked))
    assert asked == []


async def test_a_completed_upload_offers_a_download_and_no_next_chunk(hub, alice):
    upload = await hub.uploaded_file(alice, DATA, filename='résumé "final".pdf')
    view = await hub.view_upload.execute(alice.id, upload.id)
    assert view.downloadable and view.next_chunk is None
    download = await hub.view_upload.download(alice.id, upload.id)
    assert download.redirect_url is None
    assert b"".join([block async for block in download.content]) == DATA
    assert download.disposition == attachment_disposition('résumé "final".pdf')


async def test_a_download_is_a_redirect_when_storage_hands_out_its_own_url(hub, alice):
    upload = await hub.uploaded_file(alice, DATA)
    storage = hub.storage

    class PresigningStorage:
        def __getattr__(self, name):
            return getattr(storage, name)

        def download_url(self, file_id, filename):
            return f"https://storage.example/{file_id}?disposition={filename}"

    viewing = attrs.evolve(hub.view_upload, storage=PresigningStorage())
    download = await viewing.download(alice.id, upload.id)
    assert download.redirect_url == f"https://storage.example/{upload.id}?disposition=photo.jpg"
    assert download.content is None


async def test_a_download_may_ask_for_a_part_of_the_file_to_resume(hub, alice):
    upload = await hub.uploaded_file(alice, DATA)
    rest = await hub.view_upload.download(alice.id, upload.id, ByteRange(7))
    middle = await hub.view_upload.download(alice.id, upload.id, ByteRange(2, 4))
    to_beyond_the_end = await hub.view_upload.download(alice.id, upload.id, ByteRange(17, 1000))
    assert rest.span == (7, 18) and b"".join([block async for block in rest.content]) == DATA[7:]
    assert middle.span == (2, 4) and b"".join([block async for block in middle.content]) == DATA[2:5]
    assert to_beyond_the_end.span == (17, 18) and b"".join([block async for block in to_beyond_the_end.content]) == DATA[17:]
    with pytest.raises(RangeNotSatisfiable) as raised:
        await hub.view_upload.download(alice.id, upload.id, ByteRange(len(DATA)))
    assert raised.value.size == len(DATA)


async def test_a_pending_upload_cannot_be_downloaded(hub, alice):
    upload = await hub.start_upload(alice, DATA)
    with pytest.raises(Conflict) as raised:
        await hub.view_upload.download(alice.id, upload.id)
    assert raised.value.code == "file_not_completed"


# --- expiry ----------------------------------------------------------------------------------


async def test_expiry_discards_stale_pending_uploads_and_leaves_the_rest(hub, alice):
    stale = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, stale, DATA, indices=[0, 1])
    completed = await hub.uploaded_file(alice, DATA)
    hub.clock.advance(timedelta(hours=1))
    fresh = await hub.start_upload(alice, DATA)
    await hub.send_chunks(alice, fresh, DATA, indices=[0])
    hub.clock.set(stale.expires_at)

    assert await hub.expire_uploads.execute() == 1

    assert (await hub.upload(stale.id)).status is UploadStatus.EXPIRED
    assert stale.id not in hub.storage.chunks
    assert (await hub.upload(completed.id)).status is UploadStatus.COMPLETED
    assert hub.storage.files[completed.id] == DATA
    assert (await hub.upload(fresh.id)).status is UploadStatus.PENDING
    assert hub.storage.chunks[fresh.id] == {0: DATA[:4]}
    assert await hub.expire_uploads.execute() == 0


async def test_expiry_works_in_batches(hub, alice):
    uploads = [await hub.start_upload(alice, DATA) for _ in range(3)]
    hub.clock.advance(hub.upload_lifetime)
    assert await hub.expire_uploads.execute(batch=2) == 2
    assert await hub.expire_uploads.execute(batch=2) == 1
    assert {(await hub.upload(upload.id)).status for upload in uploads} == {UploadStatus.EXPIRED}
