"""The URLs the API hands out that point back at itself, on one base URL: the public URL the app
was given, else the one the request came in on. Storage's own URLs, when it hands them out, are
used instead (the use cases say so)."""

from __future__ import annotations

from chat4all.application.upload_access import NextChunk
from chat4all.application.uploads import UploadView

FILES = "/v1/files"


class Links:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def chunk(self, target: NextChunk | None) -> str | None:
        """Where the uploader sends the next chunk (None: nowhere)."""
        if target is None:
            return None
        return target.direct_url or f"{self.base_url}{FILES}/upload?file_id={target.upload_id}&chunk_id={target.index}"

    def download(self, view: UploadView) -> str | None:
        """Where the completed file is fetched (None: not completed)."""
        if not view.downloadable:
            return None
        return view.download_url or f"{self.base_url}{FILES}/{view.upload.id}/content"
