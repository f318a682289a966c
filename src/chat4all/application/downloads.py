"""Downloading a completed file: straight from storage when it hands out its own short-lived URL,
else its bytes through the API; either way as an attachment under the uploader's file name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs

from chat4all.application.ports import FileStorage
from chat4all.domain.uploads import Upload, attachment_disposition


@attrs.frozen
class Download:
    """`redirect_url`: send the client there; else `content` is the file's bytes. `disposition` is
    the Content-Disposition they are served with (storage's URL is signed with the same)."""

    upload: Upload
    redirect_url: str | None
    content: AsyncIterator[bytes] | None
    disposition: str


def download_of(storage: FileStorage, upload: Upload) -> Download:
    disposition = attachment_disposition(upload.filename)
    direct = storage.download_url(upload.id, upload.filename)
    if direct:
        return Download(upload, direct, None, disposition)
    return Download(upload, None, storage.read_file(upload.id), disposition)
