"""What an upload shows while it is under way and once complete: the chunks still missing, the next
chunk to send, and its download (whole, in part, or by redirect)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat4all.application.downloads import ByteRange
from chat4all.domain.errors import Conflict, Forbidden, Gone, InvalidInput, RangeNotSatisfiable
from chat4all.domain.uploads import UploadStatus, attachment_disposition
from tests.unit.upload_fixtures import (  # noqa: F401 - fixtures
    DATA,
    alice,
    mallory,
)


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
