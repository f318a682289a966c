"""Ports: what the use cases need from the outside world, as structural protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import attrs

from chat4all.domain.conversations import Conversation
from chat4all.domain.errors import PermanentDeliveryFailure, TransientDeliveryFailure
from chat4all.domain.messages import Message
from chat4all.domain.uploads import Upload
from chat4all.domain.users import AccessToken, User


class Clock(Protocol):
    def now(self) -> datetime: ...


class IdGenerator(Protocol):
    def new_id(self) -> UUID: ...


class PasswordHasher(Protocol):
    """Slow by design; implementations must not block the event loop."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...


class TokenIssuer(Protocol):
    def new_secret(self) -> str: ...

    def digest(self, secret: str) -> str: ...


class UserRepository(Protocol):
    async def add(self, user: User) -> None: ...

    async def get(self, user_id: UUID) -> User | None: ...

    async def get_by_username(self, username: str) -> User | None: ...

    async def existing_ids(self, user_ids: list[UUID]) -> set[UUID]: ...

    async def list(self, *, username: str | None, limit: int, offset: int) -> list[User]: ...


class TokenRepository(Protocol):
    async def add(self, token: AccessToken) -> None: ...

    async def get(self, token_hash: str) -> AccessToken | None: ...

    async def revoke(self, token_hash: str, at: datetime) -> None: ...


class LoginAttemptRepository(Protocol):
    """Failed logins per throttling key ("user:<name>", "addr:<ip>"), shared by every API process."""

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

    async def shares_file(self, file_id: UUID, user_id: UUID) -> bool:
        """True if the file was sent into a conversation the user belongs to."""
        ...

    async def record_file_share(self, file_id: UUID, conversation_id: UUID) -> None: ...


class MessageRepository(Protocol):
    async def add(self, message: Message) -> None:
        """Raises DuplicateMessage if the id exists (the unit of work is then unusable)."""
        ...

    async def get(self, message_id: UUID, *, for_update: bool = False) -> Message | None: ...

    async def update(self, message: Message) -> None:
        """Persists status, channel outcomes and the message's `new_events`."""
        ...

    async def get_many(self, message_ids: Sequence[UUID], *, for_update: bool = False) -> dict[UUID, Message]:
        """The messages found among `message_ids`, by id, with their deliveries; history is left
        empty (what `update_many` needs is tracked in `new_events`). With `for_update`, the rows
        are locked in id order, so two callers locking overlapping sets cannot deadlock."""
        ...

    async def update_many(self, messages: Sequence[Message]) -> None:
        """`update` for several messages at once: only the channels with a new event are written."""
        ...

    async def list_for_conversation(self, conversation_id: UUID, *, limit: int, offset: int) -> tuple[list[Message], int]: ...

    async def unfinished_before(
        self, before: datetime, limit: int, *, after: tuple[datetime, UUID] | None = None
    ) -> list[Message]:
        """Messages accepted before `before` that have not reached a terminal status, oldest first
        (by acceptance time, then id; deliveries loaded, history left empty). `after`: only those
        after this (acceptance time, id), the last of the previous page."""
        ...


class MessageBatches(Protocol):
    """What routing and delivery need of message storage: batches of messages read as they are,
    and batches changed in one transaction under row locks."""

    async def read(self, message_ids: Sequence[UUID]) -> dict[UUID, Message]:
        """The messages found among `message_ids`, by id, with their deliveries; history is left
        empty. Nothing is locked: what was read may change before it is acted on."""
        ...

    async def change(
        self, message_ids: Sequence[UUID], apply: Callable[[dict[UUID, Message]], Sequence[Message]]
    ) -> dict[UUID, Message]:
        """In one transaction: locks the messages found among `message_ids` (in id order, so two
        overlapping batches wait for one another instead of deadlocking), reads them as they are
        once locked, calls `apply` with them (by id, as `read` returns them), writes what `apply`
        returns (status, changed deliveries and `new_events`, as `MessageRepository.update_many`
        does), and commits. Returns the messages read, as `apply` left them.

        `apply` holds the decisions and no I/O; it is called once, even when no message was found.
        With no `message_ids` at all, nothing happens.
        """
        ...


class UploadRepository(Protocol):
    async def add(self, upload: Upload) -> None: ...

    async def get(self, upload_id: UUID, *, for_update: bool = False) -> Upload | None: ...

    async def update(self, upload: Upload) -> None: ...

    async def add_chunk(self, upload_id: UUID, index: int) -> None: ...

    async def expired_before(self, now: datetime, limit: int) -> list[Upload]: ...


class Outbox(Protocol):
    """Events written in the same transaction as the state change that caused them."""

    async def add(self, topic: str, key: str, payload: Mapping[str, Any]) -> None: ...


class UnitOfWork(Protocol):
    users: UserRepository
    tokens: TokenRepository
    login_attempts: LoginAttemptRepository
    conversations: ConversationRepository
    messages: MessageRepository
    uploads: UploadRepository
    outbox: Outbox

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


@attrs.frozen
class OutboxEvent:
    topic: str
    key: str
    payload: Mapping[str, Any]


class MessageIntake(Protocol):
    async def accept(self, message: Message, routing: OutboxEvent, file_shared_with: UUID | None = None) -> bool:
        """Stores a just-accepted message atomically with everything that must exist with it: its
        channel deliveries and first history entry, the conversation's new activity time, the share
        of its file with `file_shared_with` (a conversation id) and its `routing` outbox event.

        Returns False, storing nothing, when a message with the same id already exists.
        """
        ...


class EventPublisher(Protocol):
    async def publish(self, topic: str, key: str, payload: Mapping[str, Any]) -> None: ...

    async def publish_batch(self, events: Sequence[OutboxEvent]) -> None:
        """Returns only once every event is durably handed over (e.g. acknowledged by the broker)."""
        ...


class OutboxReader(Protocol):
    async def relay_batch(self, publisher: EventPublisher, limit: int) -> int:
        """Claims up to `limit` pending events (skipping rows other relays hold), publishes them
        and deletes them in one transaction; a failed publish leaves them for the next attempt.
        Returns how many were relayed."""
        ...

    async def backlog(self) -> int:
        """How many events wait to be relayed."""
        ...


class FileStorage(Protocol):
    """Where upload bytes live. Chunks are kept apart until the whole file's SHA-256 matches,
    so a failed checksum can be fixed by re-sending chunks instead of the whole file."""

    async def begin(self, upload_id: UUID) -> None: ...

    async def put_chunk(self, upload_id: UUID, index: int, data: bytes) -> None: ...

    async def stored_chunks(self, upload_id: UUID) -> dict[int, int]:
        """Chunk index -> stored size, including chunks PUT straight to storage."""
        ...

    async def assemble_if_matches(self, upload_id: UUID, total_chunks: int, checksum: str) -> str:
        """Hashes the stored chunks in order and, only if the SHA-256 equals `checksum`, writes them
        as the single stored file. Returns the SHA-256 it computed. Hashing and assembling read the
        same bytes, so a chunk replaced meanwhile cannot slip in.

        The chunks are kept (see `release_chunks`): until the database says the upload is completed,
        they are the only copy a retry can rely on.

        The first file stored stands, and is never replaced: it may already be recorded as completed
        with its checksum. Assembling again bytes with the same SHA-256 (a retry after the completion
        could not be recorded) keeps it and returns the checksum; assembling other bytes (chunks
        re-sent meanwhile) raises Conflict `upload_completed`. Deciding this and writing the file must
        be one step, or two completions racing could both find no file and the later one replace
        the earlier one's."""
        ...

    async def release_chunks(self, upload_id: UUID) -> None:
        """Drops the chunks of a completed upload; safe to call twice, or when they are gone."""
        ...

    async def file_exists(self, file_id: UUID) -> bool: ...

    async def discard(self, upload_id: UUID) -> None:
        """Deletes chunks and any partial object of an upload that will never complete."""
        ...

    def chunk_upload_url(self, upload_id: UUID, index: int, size: int) -> str | None:
        """A short-lived URL a client may PUT one chunk of exactly `size` bytes to, or None if chunks
        go through the API."""
        ...

    def download_url(self, file_id: UUID, filename: str) -> str | None:
        """A short-lived URL to fetch the file, or None if downloads go through the API."""
        ...

    def read_file(self, file_id: UUID) -> AsyncIterator[bytes]: ...

    async def check(self) -> None: ...


class DeliveryMetrics(Protocol):
    """Counts what the pipeline does, for operators (e.g. a Prometheus endpoint)."""

    def message_accepted(self) -> None: ...

    def message_routed(self) -> None: ...

    def delivery_retried(self, channel: str) -> None: ...

    def channel_finished(self, channel: str, *, delivered: bool) -> None: ...

    def dead_lettered(self, channel: str) -> None: ...

    def message_finished(self, status: str, seconds_since_accepted: float) -> None: ...


class NoMetrics:
    def message_accepted(self) -> None: ...

    def message_routed(self) -> None: ...

    def delivery_retried(self, channel: str) -> None: ...

    def channel_finished(self, channel: str, *, delivered: bool) -> None: ...

    def dead_lettered(self, channel: str) -> None: ...

    def message_finished(self, status: str, seconds_since_accepted: float) -> None: ...


class OutboxSignal(Protocol):
    """Tells the relay that new outbox events were committed, so it need not wait for its next poll."""

    def notify(self) -> None: ...


@attrs.frozen
class SendResult:
    """How far one message got in `ChannelConnector.deliver_many`: its first `reached`
    recipients have it; `failure` is why the next one does not (None when all have it)."""

    reached: int
    failure: TransientDeliveryFailure | PermanentDeliveryFailure | None = None


class ChannelConnector(Protocol):
    name: str
    display_name: str

    async def deliver(self, message: Message, recipient_id: UUID) -> None:
        """Raises TransientDeliveryFailure or PermanentDeliveryFailure."""
        ...

    async def deliver_many(self, sends: Sequence[tuple[Message, Sequence[UUID]]]) -> list[SendResult]:
        """Sends each message to its recipients in order, stopping at a message's first delivery
        failure (the others' sends go on); one result per message, in order. Any other error
        (e.g. the connector's own storage being away) is raised, for the caller to retry the lot."""
        ...
