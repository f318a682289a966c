"""The unit of work: one transaction over every repository the use cases write through."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from chat4all.application.ports.channels import ChannelRecords
from chat4all.application.ports.events import Outbox
from chat4all.application.ports.events_log import UserEventLog
from chat4all.application.ports.messages import MessageRepository
from chat4all.application.ports.read_state import (
    ConversationCounters,
    MessageHistory,
    ReadHorizonRepository,
    ReceiptRepository,
)
from chat4all.domain.conversations import Conversation
from chat4all.domain.quotas import OpenUploads, RecentStarts
from chat4all.domain.uploads import Upload
from chat4all.domain.users import AccessToken, User


class UserRepository(Protocol):
    async def add(self, user: User) -> None: ...

    async def get(self, user_id: UUID) -> User | None: ...

    async def get_by_username(self, username: str) -> User | None: ...

    async def existing_ids(self, user_ids: list[UUID]) -> set[UUID]: ...

    async def get_many(self, user_ids: Sequence[UUID]) -> dict[UUID, User]:
        """Those of `user_ids` that exist, in one query."""
        ...

    async def list(self, *, username: str | None, limit: int, offset: int) -> list[User]: ...


class TokenRepository(Protocol):
    async def add(self, token: AccessToken) -> None: ...

    async def get(self, token_hash: str) -> AccessToken | None: ...

    async def get_many(self, token_hashes: Sequence[str]) -> dict[str, AccessToken]:
        """Those of `token_hashes` that are known (valid or not), in one query."""
        ...

    async def revoke(self, token_hash: str, at: datetime) -> None: ...

    async def valid_among(self, token_hashes: Sequence[str], now: datetime) -> set[str]:
        """Those of `token_hashes` that are valid at `now` (known, not revoked, not expired): one
        query however many there are."""
        ...

    async def expiries_among(self, token_hashes: Sequence[str], now: datetime) -> dict[str, datetime]:
        """`valid_among`, each with the moment it expires."""
        ...


class LoginAttemptRepository(Protocol):
    """Failed logins per throttling key ("pair:<hash of name and address>", "addr:<ip>", "user:<name>"),
    shared by every API process."""

    async def failures_since(self, key: str, since: datetime) -> tuple[int, datetime | None]:
        """How many failures `key` has after `since`, and the oldest of those. Holds a lock on
        `key` until the unit of work ends, so concurrent logins count and record one after another."""
        ...

    async def record_failure(self, key: str, at: datetime) -> None: ...

    async def withdraw(self, key: str, at: datetime) -> None:
        """Removes one failure recorded for `key` at `at` (an attempt that turned out to succeed)."""
        ...

    async def clear(self, key: str) -> None: ...

    async def purge_before(self, before: datetime) -> int:
        """Deletes every failure older than `before`; returns how many."""
        ...


class ConversationRepository(Protocol):
    async def add(self, conversation: Conversation) -> None: ...

    async def get(self, conversation_id: UUID) -> Conversation | None: ...

    async def get_private(self, pair_key: str) -> Conversation | None: ...

    async def get_many(self, conversation_ids: Sequence[UUID]) -> dict[UUID, Conversation]:
        """The conversations found among `conversation_ids`, by id, with their members."""
        ...

    async def list_for_member(self, user_id: UUID, *, limit: int, offset: int) -> tuple[list[Conversation], int]: ...

    async def touch(self, conversation_id: UUID, at: datetime) -> None: ...

    async def remove_member(self, conversation_id: UUID, user_id: UUID) -> None:
        """Takes `user_id` out of the conversation's members (nothing happens if they are not one)."""
        ...

    async def started_since(self, user_id: UUID, since: datetime) -> RecentStarts:
        """The conversations `user_id` started after `since`. Holds a lock on that user's count until
        the unit of work ends, so concurrent starts count and add one after another."""
        ...

    async def shares_file(self, file_id: UUID, user_id: UUID) -> bool:
        """True if the file was sent into a conversation the user belongs to."""
        ...

    async def record_file_share(self, file_id: UUID, conversation_id: UUID) -> None: ...


class UploadRepository(Protocol):
    async def add(self, upload: Upload) -> None: ...

    async def get(self, upload_id: UUID, *, for_update: bool = False) -> Upload | None: ...

    async def update(self, upload: Upload) -> None: ...

    async def add_chunk(self, upload_id: UUID, index: int) -> None: ...

    async def expired_before(self, now: datetime, limit: int) -> list[Upload]: ...

    async def open_for_owner(self, owner_id: UUID, now: datetime) -> OpenUploads:
        """The owner's uploads still pending and not expired at `now`. Holds a lock on that owner's
        count until the unit of work ends, so concurrent initiations count and add one after another."""
        ...


class UnitOfWork(Protocol):
    """One transaction over every repository: what is written through any of them commits, or rolls
    back, together (a message with its receipts, unread counts and events; a change with its outbox
    events). Row locks follow the order in `read_state`."""

    users: UserRepository
    tokens: TokenRepository
    login_attempts: LoginAttemptRepository
    conversations: ConversationRepository
    messages: MessageRepository
    uploads: UploadRepository
    outbox: Outbox
    events: UserEventLog
    conversation_counters: ConversationCounters
    history: MessageHistory
    read_horizons: ReadHorizonRepository
    receipts: ReceiptRepository
    channels: ChannelRecords

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
