"""Downloading a completed file: straight from storage when it hands out its own short-lived URL,
else its bytes through the API; either way as an attachment under the uploader's file name.

Through the API a client may ask for a part of the file (HTTP's Range), so an interrupted download
resumes where it stopped; storage's own URLs answer such requests themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs

from chat4all.application.ports import FileStorage
from chat4all.domain.errors import RangeNotSatisfiable
from chat4all.domain.uploads import Upload, attachment_disposition


@attrs.frozen
class ByteRange:
    """Bytes `first` to `last` of a file, both included, counted from 0; `last` None: to the end."""

    first: int
    last: int | None = None


@attrs.frozen
class Download:
    """`redirect_url`: send the client there; else `content` is the file's bytes, or only those of
    `span` (first and last byte, included) when a part was asked for. `disposition` is the
    Content-Disposition they are served with (storage's URL is signed with the same)."""

    upload: Upload
    redirect_url: str | None
    content: AsyncIterator[bytes] | None
    disposition: str
    span: tuple[int, int] | None = None


def download_of(storage: FileStorage, upload: Upload, wanted: ByteRange | None = None) -> Download:
    disposition = attachment_disposition(upload.filename)
    direct = storage.download_url(upload.id, upload.filename)
    if direct:
        return Download(upload, direct, None, disposition)
    if wanted is None:
        return Download(upload, None, storage.read_file(upload.id), disposition)
    first, last = _span(wanted, upload.file_size)
    content = _at_most(storage.read_file(upload.id, start=first), last - first + 1)
    return Download(upload, None, content, disposition, (first, last))


def _span(wanted: ByteRange, size: int) -> tuple[int, int]:
    if wanted.first >= size:
        raise RangeNotSatisfiable(f"the file has {size} bytes; byte {wanted.first} is past its end", size=size)
    last = size - 1 if wanted.last is None else min(wanted.last, size - 1)
    return wanted.first, last


async def _at_most(blocks: AsyncIterator[bytes], length: int) -> AsyncIterator[bytes]:
    try:
        async for block in blocks:
            if len(block) >= length:
                yield block[:length]
                return
            length -= len(block)
            yield block
    finally:
        close = getattr(blocks, "aclose", None)  # the rest of the file is not read: free its handle now
        if close is not None:
            await close()
