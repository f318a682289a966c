"""What `chat4all upload` remembers between attempts, and how it decides to resume.

One state file per (server, user, file path) in `<state dir>/uploads/`: the upload's id and chunk
layout, the file's size and modification time when it began, and for each chunk the server
confirmed the SHA-256 of the file from its start through that chunk. That digest costs nothing
extra: the whole file's SHA-256 is computed in order anyway, and the digest so far is taken at
each chunk's end. The server says which chunks it holds; the state says whether the local file is
still the one they came from. A file whose size or modification time changed, or whose bytes up
to a confirmed chunk read back differently, is refused: resuming would complete a file that is
neither the old nor the new one (the final SHA-256 check would then fail, after sending it all)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chat4all.client.errors import FileChanged
from chat4all.client.paths import write_private


@dataclass(frozen=True)
class LocalFile:
    path: Path  # absolute
    size: int
    mtime_ns: int

    @classmethod
    def at(cls, path: Path) -> LocalFile:
        absolute = path.expanduser().resolve()
        stat = absolute.stat()
        return cls(absolute, stat.st_size, stat.st_mtime_ns)


@dataclass
class UploadState:
    server: str
    username: str
    path: str
    size: int
    mtime_ns: int
    file_id: str
    chunk_size: int
    total_chunks: int
    # chunk index -> SHA-256 (hex) of the file's bytes from the start through that chunk
    digests_through: dict[int, str] = field(default_factory=dict)
    message_id: str | None = None  # chosen before the file message is sent, so a retry cannot send it twice

    def chunk_length(self, index: int) -> int:
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def confirm(self, index: int, digest_through: str) -> None:
        self.digests_through[index] = digest_through

    def require_same_start(self, index: int, digest_through: str) -> None:
        """Checks the file up to a chunk the server holds reads back as it did when this client saw
        that chunk confirmed (chunks it never saw confirmed are left to the final checksum)."""
        expected = self.digests_through.get(index)
        if expected is not None and digest_through != expected:
            end = min(self.size, (index + 1) * self.chunk_size)
            raise FileChanged(f"{self.path} changed since its upload began (its first {end} bytes differ): {RESTART}")


RESTART = "run the same command with --restart to upload it afresh"


def require_unchanged(state: UploadState, local: LocalFile) -> None:
    if (state.size, state.mtime_ns) != (local.size, local.mtime_ns):
        what = "size" if state.size != local.size else "modification time"
        raise FileChanged(f"{local.path} changed since its upload began (its {what} differs): {RESTART}")


def should_resume(state: UploadState | None, local: LocalFile, restart: bool) -> bool:
    """Resume when an earlier attempt left a state and --restart was not given; a changed file raises."""
    if state is None or restart:
        return False
    require_unchanged(state, local)
    return True


class StateStore:
    def __init__(self, directory: Path):
        self.directory = directory

    def path_for(self, server: str, username: str, path: Path | str) -> Path:
        key = hashlib.sha256(f"{server}\n{username}\n{path}".encode()).hexdigest()
        return self.directory / f"{key}.json"

    def load(self, server: str, username: str, local: LocalFile) -> UploadState | None:
        """The state of an unfinished upload of this file, or None. An unreadable state (cut short by
        a power loss, say) counts as none: the upload starts again rather than fail."""
        try:
            raw = json.loads(self.path_for(server, username, local.path).read_text(encoding="utf-8"))
            raw["digests_through"] = {int(index): str(digest) for index, digest in raw["digests_through"].items()}
            return UploadState(**raw)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def save(self, state: UploadState) -> None:
        write_private(self.path_for(state.server, state.username, state.path), json.dumps(asdict(state)))

    def remove(self, state: UploadState) -> None:
        self.path_for(state.server, state.username, state.path).unlink(missing_ok=True)


def fresh_state(server: str, username: str, local: LocalFile, initiated: dict) -> UploadState:
    return UploadState(
        server=server,
        username=username,
        path=str(local.path),
        size=local.size,
        mtime_ns=local.mtime_ns,
        file_id=initiated["file_id"],
        chunk_size=initiated["chunk_size"],
        total_chunks=initiated["total_chunks"],
    )
