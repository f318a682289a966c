"""Chunked, resumable file uploads verified by SHA-256 before they can be sent."""

from __future__ import annotations

import enum
import math
import re
from datetime import datetime
from urllib.parse import quote
from uuid import UUID

import attrs

from chat4all.domain.errors import Conflict, Forbidden, Gone, InvalidInput, TooLarge

MAX_FILE_SIZE = 2 * 1024**3
MAX_FILENAME_LENGTH = 255
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Path separators, control characters, and the bidirectional overrides and isolates that can make
# "invoice\u202egpj.exe" display as "invoiceexe.jpg".
_FORBIDDEN_FILENAME_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\u202a-\u202e\u2066-\u2069]")
# RFC 8187 attr-char minus ALPHA / DIGIT, which quote() never escapes.
_ATTR_CHAR_EXTRAS = "!#$&+-.^_`|~"
# RFC 6266 appendix D: the plain fallback should be printable ASCII without '%', '\' or '"'.
_UNSAFE_FALLBACK = re.compile(r'[^\x20-\x7e]|["\\%]')


def stored_file_differs() -> Conflict:
    """What a completion answers when the upload's file is already stored with other bytes: an
    earlier completion stored it, and may or may not have been recorded (see FileStorage)."""
    return Conflict(
        "this upload's file is already stored, with a different checksum (an earlier completion stored it, "
        "and its result may not be recorded yet); re-send that file's chunks and complete again, or start a new upload",
        code="upload_completed",
    )


class UploadStatus(str, enum.Enum):
    PENDING = "pending"
    COMPLETED = "completed"
    EXPIRED = "expired"


def validate_filename(filename: str) -> str:
    problems = []
    if not filename or not filename.strip():
        problems.append("must not be empty")
    if len(filename) > MAX_FILENAME_LENGTH:
        problems.append(f"at most {MAX_FILENAME_LENGTH} characters")
    if _FORBIDDEN_FILENAME_CHARS.search(filename):
        problems.append("must not contain path separators, control characters or bidirectional overrides")
    if filename in {".", ".."}:
        problems.append("must be a file name, not a path")
    if problems:
        raise InvalidInput("filename is not acceptable: " + "; ".join(problems), field_errors={"filename": problems})
    return filename


def attachment_disposition(filename: str) -> str:
    """`Content-Disposition: attachment` for a user-chosen file name (RFC 6266, RFC 8187), however
    the file is downloaded: through the API, or from storage's own URL."""
    fallback = _UNSAFE_FALLBACK.sub("_", filename).strip() or "download"
    encoded = quote(filename, safe=_ATTR_CHAR_EXTRAS, encoding="utf-8", errors="replace")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def validate_file_size(file_size: int) -> int:
    if file_size <= 0:
        raise InvalidInput("file_size must be positive", field_errors={"file_size": ["must be > 0"]})
    if file_size > MAX_FILE_SIZE:
        raise TooLarge(f"file_size exceeds the {MAX_FILE_SIZE} byte limit (2 GiB)", code="file_too_large")
    return file_size


def validate_checksum(checksum: str) -> str:
    normalized = checksum.strip().lower()
    if not SHA256_HEX.fullmatch(normalized):
        raise InvalidInput(
            "checksum must be the hex SHA-256 of the whole file",
            field_errors={"checksum": ["64 hexadecimal characters"]},
        )
    return normalized


@attrs.frozen
class ChunkLayout:
    file_size: int
    chunk_size: int

    @property
    def total_chunks(self) -> int:
        return math.ceil(self.file_size / self.chunk_size)

    def expected_size(self, index: int) -> int:
        if not 0 <= index < self.total_chunks:
            raise InvalidInput(
                f"chunk_id must be between 0 and {self.total_chunks - 1}",
                code="invalid_chunk_id",
                field_errors={"chunk_id": [f"0-{self.total_chunks - 1}"]},
            )
        if index == self.total_chunks - 1:
            return self.file_size - self.chunk_size * index
        return self.chunk_size


@attrs.define(eq=False)
class Upload:
    id: UUID
    owner_id: UUID
    filename: str
    file_size: int
    content_type: str
    chunk_size: int
    status: UploadStatus
    created_at: datetime
    expires_at: datetime
    received_chunks: set[int] = attrs.field(factory=set)
    checksum: str | None = None
    completed_at: datetime | None = None

    @property
    def layout(self) -> ChunkLayout:
        return ChunkLayout(self.file_size, self.chunk_size)

    @property
    def total_chunks(self) -> int:
        return self.layout.total_chunks

    def missing_chunks(self) -> list[int]:
        return [index for index in range(self.total_chunks) if index not in self.received_chunks]

    def next_missing_chunk(self, after: int = -1) -> int | None:
        missing = self.missing_chunks()
        later = [index for index in missing if index > after]
        return (later or missing or [None])[0]

    def is_expired_at(self, now: datetime) -> bool:
        return self.status is UploadStatus.EXPIRED or (self.status is UploadStatus.PENDING and now >= self.expires_at)

    def require_owner(self, user_id: UUID) -> None:
        if user_id != self.owner_id:
            raise Forbidden("only the uploader may change this upload", code="not_uploader")

    def require_open(self, now: datetime) -> None:
        if self.status is UploadStatus.COMPLETED:
            raise Conflict("this upload is already completed", code="upload_completed")
        if self.is_expired_at(now):
            raise Gone("this upload has expired; start a new one", code="upload_expired")

    def check_chunk(self, index: int, size: int) -> None:
        expected = self.layout.expected_size(index)
        if size != expected:
            raise InvalidInput(
                f"chunk {index} must be exactly {expected} bytes, got {size}",
                code="invalid_chunk_size",
                field_errors={"body": [f"exactly {expected} bytes"]},
            )

    def record_chunk(self, index: int) -> None:
        self.received_chunks.add(index)

    def complete(self, checksum: str, now: datetime) -> None:
        self.status = UploadStatus.COMPLETED
        self.checksum = checksum
        self.completed_at = now

    def expire(self) -> None:
        self.status = UploadStatus.EXPIRED
