"""Per-user quotas: how much one account may hold open or start, so that no user can exhaust the
hub's storage or fill other people's conversation lists."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import attrs

from chat4all.domain.errors import QuotaExceeded

GIB = 1024**3
OPEN_UPLOADS = "open_uploads"
OPEN_UPLOAD_BYTES = "open_upload_bytes"
CONVERSATIONS_PER_HOUR = "conversations_per_hour"


@attrs.frozen
class OpenUploads:
    """A user's uploads that are neither completed nor expired, and the bytes their sizes announce."""

    count: int
    reserved_bytes: int


@attrs.frozen
class RecentStarts:
    """The conversations a user started within the quota's window, and when the earliest was."""

    count: int
    earliest: datetime | None


@attrs.frozen
class UserQuotas:
    max_open_uploads: int = 20
    max_open_upload_bytes: int = 10 * GIB
    max_conversations_per_hour: int = 60

    def check_new_upload(self, open_uploads: OpenUploads, file_size: int) -> None:
        """Raises QuotaExceeded unless one more upload of `file_size` bytes fits."""
        if open_uploads.count >= self.max_open_uploads:
            raise QuotaExceeded(
                f"{OPEN_UPLOADS} quota exceeded: at most {self.max_open_uploads} uploads may be open at once; "
                "complete one, or wait until an unfinished one expires",
                quota=OPEN_UPLOADS,
            )
        if open_uploads.reserved_bytes + file_size > self.max_open_upload_bytes:
            raise QuotaExceeded(
                f"{OPEN_UPLOAD_BYTES} quota exceeded: open uploads may announce at most {self.max_open_upload_bytes} "
                f"bytes in all; {open_uploads.reserved_bytes} are announced already and this one adds {file_size}; "
                "complete some, or wait until unfinished ones expire",
                quota=OPEN_UPLOAD_BYTES,
            )

    def check_new_conversation(self, recent: RecentStarts, now: datetime) -> None:
        """Raises QuotaExceeded, with the seconds until a slot frees, unless one more may start now."""
        if recent.count < self.max_conversations_per_hour:
            return
        frees_at = (recent.earliest or now) + self.conversation_window
        raise QuotaExceeded(
            f"{CONVERSATIONS_PER_HOUR} quota exceeded: at most {self.max_conversations_per_hour} conversations "
            "may be started per hour; try again later",
            quota=CONVERSATIONS_PER_HOUR,
            retry_after_seconds=max(1, math.ceil((frees_at - now).total_seconds())),
        )

    @property
    def conversation_window(self) -> timedelta:
        return timedelta(hours=1)
