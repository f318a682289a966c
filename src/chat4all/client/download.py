"""`chat4all download FILE_ID [-o PATH]`: fetch a file, resume a broken fetch, verify its SHA-256.

The bytes go to a hidden partial file beside the target, named after the file id; running the
command again asks only for the bytes after those it holds (HTTP Range, which the API and
storage's own URLs both take), and the whole is hashed and checked against the checksum the
server verified at upload before it is renamed to the target: the target is either absent or
the complete, verified file."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from chat4all.client.api import Hub
from chat4all.client.credentials import load_credentials
from chat4all.client.errors import ClientError
from chat4all.client.output import Output, Progress, human_size
from chat4all.client.paths import Directories

BLOCK = 1024 * 1024
REPORTS = 10  # lines printed for one download when there is no terminal
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def target_path(given: str | None, filename: str, force: bool) -> Path:
    name = Path(filename).name
    if name in ("", ".", ".."):
        name = "download"
    target = Path(given) if given else Path.cwd() / name
    if target.is_dir():
        target = target / name
    if target.exists() and not force:
        raise ClientError(f"{target} exists: choose another path with -o, or replace it with --force")
    return target


class Downloader:
    def __init__(self, hub: Hub, output: Output):
        self.hub = hub
        self.output = output

    def fetch(self, meta: dict[str, Any], partial: Path) -> None:
        size = meta["file_size"]
        digest, have = self._resume_point(partial, size)
        with open(partial, "ab") as sink:
            if have < size:
                with self.output.progress(meta["filename"], size, have) as progress:
                    digest = self._receive(meta, sink, have, digest, progress)
            sink.flush()
            os.fsync(sink.fileno())
        if digest.hexdigest() != meta["checksum"]:
            partial.unlink()
            raise ClientError("the bytes received do not match the file's SHA-256; run the command again")

    def _resume_point(self, partial: Path, size: int) -> tuple[Any, int]:
        """The hash of the bytes a broken attempt left, and how many there are."""
        digest = hashlib.sha256()
        if not partial.exists() or partial.stat().st_size > size:
            partial.unlink(missing_ok=True)
            return digest, 0
        with open(partial, "rb") as held:
            while block := held.read(BLOCK):
                digest.update(block)
        have = partial.stat().st_size
        if have:
            self.output.step(f"resuming at {human_size(have)} of {human_size(size)}")
        return digest, have

    def _receive(self, meta: dict[str, Any], sink: BinaryIO, have: int, digest: Any, progress: Progress) -> Any:
        total = meta["file_size"]
        report_every = max(total // REPORTS, BLOCK)
        with self._content(meta["file_id"], have) as (response, start):
            if start != have:  # the whole file came instead of the rest
                sink.truncate(0)
                digest, have = hashlib.sha256(), 0
            for block in response.iter_bytes(BLOCK):
                sink.write(block)
                digest.update(block)
                have += len(block)
                crossed = have // report_every != (have - len(block)) // report_every
                progress.advance(len(block), f"{human_size(have)} of {human_size(total)} received" if crossed else None)
        if have != total:
            raise ClientError(f"the download stopped after {human_size(have)}; run the command again to resume")
        return digest

    @contextmanager
    def _content(self, file_id: str, have: int) -> Iterator[tuple[httpx.Response, int]]:
        """The file's bytes from `have` on, and the byte they start at (0 if the server sent them all)."""
        headers = {"Range": f"bytes={have}-"} if have else {}
        with ExitStack() as stack:
            response = stack.enter_context(self.hub.fetch(f"/v1/files/{file_id}/content", headers))
            if response.is_redirect:  # storage's own URL: the token does not go there
                response = stack.enter_context(self.hub.fetch(response.headers["location"], headers))
            yield response, start_of(response, have)


def start_of(response: httpx.Response, have: int) -> int:
    if response.status_code == 200:
        return 0
    match = CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
    if response.status_code != 206 or match is None or int(match[1]) != have:
        raise ClientError(f"unexpected answer to a resumed download: HTTP {response.status_code}")
    return have


def download(args: argparse.Namespace, output: Output, directories: Directories) -> None:
    try:
        file_id = str(uuid.UUID(args.file_id))
    except ValueError:
        raise ClientError(f"not a file id: {args.file_id!r}") from None
    me = load_credentials(directories)
    with Hub(me.url, me.access_token) as hub:
        meta = hub.call("GET", f"/v1/files/{file_id}")
        if meta["status"] != "completed":
            raise ClientError(f"file {file_id} cannot be downloaded yet: its upload is {meta['status']}")
        target = target_path(args.output, meta["filename"], args.force)
        partial = target.with_name(f".{target.name}.{file_id}.part")
        Downloader(hub, output).fetch(meta, partial)
    partial.replace(target)
    result = {"file_id": file_id, "path": str(target), "file_size": meta["file_size"], "checksum": meta["checksum"]}
    output.result(
        result, f"downloaded {meta['filename']} ({human_size(meta['file_size'])}) to {target}, sha256 verified"
    )
