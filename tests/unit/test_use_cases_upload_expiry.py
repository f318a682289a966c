"""Expiry of stale pending uploads: discarded in batches, the rest left alone."""

from __future__ import annotations

from datetime import timedelta

from chat4all.domain.uploads import UploadStatus
from tests.unit.upload_fixtures import (  # noqa: F401 - fixtures
    DATA,
    alice,
)


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
