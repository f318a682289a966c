"""Upload bytes on the local disk (the embedded profile).

Layout under `base_dir`: `uploads/<upload_id>/<index>.part` for chunks and `files/<file_id>` for
verified files. Paths are built only from UUIDs and integers, never from client-supplied names.
Every write goes to a temporary file in the target directory first and is then moved into place,
so readers see either the old bytes or the new ones, never a mix. A chunk is renamed over the one it
replaces; a file is hard-linked into place, which never replaces one already stored (see `_assemble`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from uuid import UUID

from chat4all.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from chat4all.domain.uploads import stored_file_differs

BLOCK_SIZE = 1024 * 1024
HASH_BLOCK_SIZE = 8 * 1024 * 1024
CHUNK_SUFFIX = ".part"
TEMP_SUFFIX = ".tmp"

T = TypeVar("T")


class LocalFileStorage:
    def __init__(self, base_dir: Path, *, executor: Executor | None = None):
        self._base = Path(base_dir)
        self._chunks_root = self._base / "uploads"
        self._files_root = self._base / "files"
        self._executor = executor

    async def begin(self, upload_id: UUID) -> None:
        await self._run(self._chunk_dir(upload_id).mkdir, parents=True, exist_ok=True)

    async def put_chunk(self, upload_id: UUID, index: int, data: bytes) -> None:
        await self._run(self._put_chunk, self._chunk_dir(upload_id), _index(index), data)

    async def stored_chunks(self, upload_id: UUID) -> dict[int, int]:
        return await self._run(_list_chunks, self._chunk_dir(upload_id))

    async def assemble_if_matches(self, upload_id: UUID, total_chunks: int, checksum: str) -> str:
        return await self._run(self._assemble, upload_id, total_chunks, checksum.strip().lower())

    async def release_chunks(self, upload_id: UUID) -> None:
        await self._run(_remove_chunk_dir, self._chunk_dir(upload_id))

    async def file_exists(self, file_id: UUID) -> bool:
        return await self._run(self._file_path(file_id).is_file)

    async def discard(self, upload_id: UUID) -> None:
        await self._run(self._discard, upload_id)

    def chunk_upload_url(self, upload_id: UUID, index: int, size: int) -> str | None:
        return None

    def download_url(self, file_id: UUID, filename: str) -> str | None:
        return None

    async def read_file(self, file_id: UUID, start: int = 0) -> AsyncIterator[bytes]:
        path = self._file_path(file_id)
        try:
            handle = await self._run(open, path, "rb")
        except FileNotFoundError:
            raise NotFound("no such file", code="file_not_found") from None
        try:
            if start:
                await self._run(handle.seek, start)
            while block := await self._run(handle.read, BLOCK_SIZE):
                yield block
        finally:
            await self._run(handle.close)

    async def check(self) -> None:
        try:
            await self._run(self._check)
        except OSError as error:
            raise Unavailable(f"file storage is not writable: {error.strerror or error}") from error

    async def _run(self, function: Callable[..., T], *args: object, **kwargs: object) -> T:
        call = functools.partial(function, *args, **kwargs)
        if self._executor is None:
            return await asyncio.to_thread(call)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _chunk_dir(self, upload_id: UUID) -> Path:
        return self._chunks_root / str(_uuid(upload_id))

    def _file_path(self, file_id: UUID) -> Path:
        return self._files_root / str(_uuid(file_id))

    # Everything below runs in a worker thread.

    def _put_chunk(self, directory: Path, index: int, data: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # No fsync: a chunk lost in a crash shows up as missing or short, or fails the checksum.
        with _temp_file(directory, f".{index}.") as (handle, temp_path):
            handle.write(data)
            handle.close()
            os.replace(temp_path, directory / f"{index}{CHUNK_SUFFIX}")

    def _assemble(self, upload_id: UUID, total_chunks: int, checksum: str) -> str:
        """Hashes chunk i (read through one reused buffer) while a second thread copies chunk i-1
        into the final file. Each chunk is hashed and copied through the same open descriptor, and a
        chunk file is never written in place (only replaced by a rename), so the bytes copied are
        the bytes hashed even if the chunk is re-sent meanwhile. The chunks stay (see
        `release_chunks`).

        The file a completion stored stands: it may already be recorded as completed with its
        checksum, and a later assembly (chunks re-sent before that completion was recorded) must
        not put other bytes under it. So the file is hard-linked into place rather than renamed:
        a link fails if the name exists, checked and created in one step by the filesystem (which
        must have hard links; FAT and some network filesystems do not, and get Unavailable). A
        stored file with the same SHA-256 is the same file (a retry after the completion could not
        be recorded) and is kept; one with another raises Conflict."""
        final_path = self._file_path(upload_id)
        self._files_root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        buffer = bytearray(HASH_BLOCK_SIZE)
        with _temp_file(self._files_root, f".{final_path.name}.") as (out, temp_path):
            self._hash_and_copy(upload_id, total_chunks, out.fileno(), digest, buffer)
            actual = digest.hexdigest()
            if actual != checksum:
                return actual
            os.fsync(out.fileno())
            out.close()
            if not _link_into_place(temp_path, final_path, actual, buffer):
                return actual
        _fsync_dir(self._files_root)
        return actual

    def _hash_and_copy(self, upload_id: UUID, total_chunks: int, out: int, digest: Any, buffer: bytearray) -> None:
        """Chunk i is hashed here while the copier thread copies chunk i-1 to `out`."""
        chunk_dir = self._chunk_dir(upload_id)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="assemble-copy") as copier:
            # On an error the copier's exit waits for the copy in flight, before the temporary file goes.
            copying: Future[None] | None = None
            position = 0
            for index in range(total_chunks):
                try:
                    chunk = open(chunk_dir / f"{index}{CHUNK_SUFFIX}", "rb", buffering=0)
                except FileNotFoundError:
                    if self._file_path(upload_id).is_file():
                        raise Conflict("this upload is already completed", code="upload_completed") from None
                    raise InvalidInput(f"chunk {index} is missing", code="missing_chunks") from None
                try:
                    size = _hash_into(chunk, digest, buffer)
                except BaseException:
                    chunk.close()
                    raise
                if copying is not None:
                    copying.result()
                copying = copier.submit(_copy_and_close, chunk, out, position, size)
                position += size
            if copying is not None:
                copying.result()

    def _discard(self, upload_id: UUID) -> None:
        shutil.rmtree(self._chunk_dir(upload_id), ignore_errors=True)
        for leftover in self._files_root.glob(f".{_uuid(upload_id)}.*{TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)

    def _check(self) -> None:
        for directory in (self._chunks_root, self._files_root):
            directory.mkdir(parents=True, exist_ok=True)
            with _temp_file(directory, ".check."):
                pass


def _hash_into(chunk: BinaryIO, digest: Any, buffer: bytearray) -> int:
    """Feeds the whole file through `digest` and says how many bytes it had."""
    size = 0
    with memoryview(buffer) as view:
        while read := chunk.readinto(view):
            digest.update(view[:read])
            size += read
    return size


def _require_stored_checksum(path: Path, checksum: str, buffer: bytearray) -> None:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stored:
        _hash_into(stored, digest, buffer)
    if digest.hexdigest() != checksum:
        raise stored_file_differs()


def _copy_and_close(chunk: BinaryIO, out_fd: int, position: int, size: int) -> None:
    """Copies the first `size` bytes of `chunk` to `out_fd` at `position` (in the kernel where it can)."""
    try:
        copied = 0
        if hasattr(os, "copy_file_range"):
            with contextlib.suppress(OSError):
                while copied < size:
                    done = os.copy_file_range(chunk.fileno(), out_fd, size - copied, copied, position + copied)
                    if done == 0:
                        break
                    copied += done
        while copied < size:
            block = os.pread(chunk.fileno(), min(BLOCK_SIZE, size - copied), copied)
            if not block:
                raise OSError(f"chunk file shrank while being copied ({copied} of {size} bytes)")
            copied += os.pwrite(out_fd, block, position + copied)
    finally:
        chunk.close()


def _list_chunks(directory: Path) -> dict[int, int]:
    sizes: dict[int, int] = {}
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return sizes
    with entries:
        for entry in entries:
            stem, dot, suffix = entry.name.partition(".")
            if dot and "." + suffix == CHUNK_SUFFIX and stem.isascii() and stem.isdigit():
                with contextlib.suppress(FileNotFoundError):
                    sizes[int(stem)] = entry.stat().st_size
    return sizes


def _remove_chunk_dir(directory: Path) -> None:
    """Removes an upload's chunk directory. What a concurrent call removed first is fine; any other
    failure is raised, so chunks are not left behind without a word."""

    def gone_already(function: Any, path: str, error: Any) -> None:
        if not issubclass(error[0], FileNotFoundError):
            raise error[1]

    shutil.rmtree(directory, onerror=gone_already)


@contextlib.contextmanager
def _temp_file(directory: Path, prefix: str) -> Iterator[tuple[BinaryIO, Path]]:
    """Yields an open temporary file in `directory`; it is removed unless renamed away first."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=TEMP_SUFFIX)
    path = Path(name)
    handle = os.fdopen(fd, "wb")
    try:
        yield handle, path
    finally:
        handle.close()
        path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _uuid(value: UUID) -> UUID:
    if not isinstance(value, UUID):
        raise TypeError(f"expected a UUID, got {type(value).__name__}")
    return value


def _index(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"chunk index must be a non-negative int, got {value!r}")
    return value


def _link_into_place(temp_path: Path, final_path: Path, checksum: str, buffer: bytearray) -> bool:
    """Links the assembled file into place; False if a file with the same checksum is there already
    (Conflict if one with another)."""
    try:
        os.link(temp_path, final_path)
    except FileExistsError:
        _require_stored_checksum(final_path, checksum, buffer)
        return False
    except OSError as error:
        if error.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise Unavailable(
                "the data directory's filesystem cannot hard-link files, which storing a verified file needs; "
                "put CHAT4ALL_DATA_DIR on a filesystem that can (ext4, xfs, btrfs, ...)"
            ) from error
        raise
    return True
