"""In-memory twins of the SQL repositories, for unit tests and the embedded app's tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.application.errors import DuplicateKey, DuplicateMessage
from chat4all.domain.conversations import Conversation, ConversationType
from chat4all.domain.messages import Message
from chat4all.domain.quotas import OpenUploads, RecentStarts
from chat4all.domain.uploads import Upload, UploadStatus
from chat4all.domain.users import AccessToken, User
from tests.fakes.store import Transaction


class InMemoryUserRepository:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._users = tx.table(tx.store.users)

    async def add(self, user: User) -> None:
        if self._users.has(user.id) or await self.get_by_username(user.username):
            raise self._tx.duplicate(DuplicateKey(f"user {user.username!r} exists"))
        self._users.put(user.id, user)
        self._tx.check_at_commit(lambda: self._check_committed(user))

    def _check_committed(self, user: User) -> None:
        if user.id in self._users.rows or any(row.username == user.username for row in self._users.rows.values()):
            raise DuplicateKey(f"user {user.username!r} exists")

    async def get(self, user_id: UUID) -> User | None:
        return self._users.get(user_id)

    async def get_by_username(self, username: str) -> User | None:
        return next(iter(self._users.select(lambda user: user.username == username)), None)

    async def existing_ids(self, user_ids: list[UUID]) -> set[UUID]:
        return {user_id for user_id in user_ids if self._users.has(user_id)}

    async def get_many(self, user_ids: Sequence[UUID]) -> dict[UUID, User]:
        return {user_id: user for user_id in user_ids if (user := self._users.get(user_id)) is not None}

    async def list(self, *, username: str | None, limit: int, offset: int) -> list[User]:
        """Ordered by username; `username` filters on an exact match."""
        users = self._users.select(lambda user: username is None or user.username == username)
        return sorted(users, key=lambda user: user.username)[offset : offset + limit]


class InMemoryTokenRepository:
    def __init__(self, tx: Transaction) -> None:
        self._tokens = tx.table(tx.store.tokens)

    async def add(self, token: AccessToken) -> None:
        self._tokens.put(token.token_hash, token)

    async def get(self, token_hash: str) -> AccessToken | None:
        return self._tokens.get(token_hash)

    async def get_many(self, token_hashes: Sequence[str]) -> dict[str, AccessToken]:
        return {digest: token for digest in token_hashes if (token := self._tokens.get(digest)) is not None}

    async def revoke(self, token_hash: str, at: datetime) -> None:
        token = self._tokens.get(token_hash)
        if token is not None and token.revoked_at is None:
            self._tokens.put(token_hash, attrs.evolve(token, revoked_at=at))

    async def valid_among(self, token_hashes: Sequence[str], now: datetime) -> set[str]:
        return set(await self.expiries_among(token_hashes, now))

    async def expiries_among(self, token_hashes: Sequence[str], now: datetime) -> dict[str, datetime]:
        tokens = [self._tokens.get(digest) for digest in token_hashes]
        return {token.token_hash: token.expires_at for token in tokens if token is not None and token.is_valid_at(now)}


class InMemoryConversationRepository:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._conversations = tx.table(tx.store.conversations)
        self._shares = tx.set(tx.store.file_shares)

    async def add(self, conversation: Conversation) -> None:
        key = conversation.private_key
        if self._conversations.has(conversation.id) or (key is not None and await self.get_private(key)):
            raise self._tx.duplicate(DuplicateKey(f"conversation {conversation.id} or its private pair exists"))
        self._conversations.put(conversation.id, conversation)
        self._tx.check_at_commit(lambda: self._check_committed(conversation))

    def _check_committed(self, conversation: Conversation) -> None:
        rows = self._conversations.rows
        key = conversation.private_key
        if conversation.id in rows or (key is not None and any(row.private_key == key for row in rows.values())):
            raise DuplicateKey(f"conversation {conversation.id} or its private pair exists")

    async def get(self, conversation_id: UUID) -> Conversation | None:
        return self._conversations.get(conversation_id)

    async def get_private(self, pair_key: str) -> Conversation | None:
        found = self._conversations.select(lambda row: row.type is ConversationType.PRIVATE and row.private_key == pair_key)
        return next(iter(found), None)

    async def get_many(self, conversation_ids: Sequence[UUID]) -> dict[UUID, Conversation]:
        found = (self._conversations.get(conversation_id) for conversation_id in dict.fromkeys(conversation_ids))
        return {conversation.id: conversation for conversation in found if conversation is not None}

    async def list_for_member(self, user_id: UUID, *, limit: int, offset: int) -> tuple[list[Conversation], int]:
        """Most recently active first."""
        mine = self._conversations.select(lambda row: row.has_member(user_id))
        mine.sort(key=lambda row: str(row.id))
        mine.sort(key=lambda row: row.last_activity_at, reverse=True)
        return mine[offset : offset + limit], len(mine)

    async def touch(self, conversation_id: UUID, at: datetime) -> None:
        # Rows are written whole: locked, so that a touch and a member leaving cannot undo each other.
        await self._tx.lock(("conversation", conversation_id))
        conversation = self._conversations.get(conversation_id)
        if conversation is not None and at > conversation.last_activity_at:
            conversation.last_activity_at = at
            self._conversations.put(conversation_id, conversation)

    async def remove_member(self, conversation_id: UUID, user_id: UUID) -> None:
        await self._tx.lock(("conversation", conversation_id))
        conversation = self._conversations.get(conversation_id)
        if conversation is not None and conversation.has_member(user_id):
            conversation.members = tuple(member for member in conversation.members if member != user_id)
            self._conversations.put(conversation_id, conversation)

    async def started_since(self, user_id: UUID, since: datetime) -> RecentStarts:
        await self._tx.lock(("conversations started by", user_id))
        started = self._conversations.select(lambda row: row.created_by == user_id and row.created_at > since)
        return RecentStarts(len(started), min((row.created_at for row in started), default=None))

    async def shares_file(self, file_id: UUID, user_id: UUID) -> bool:
        for shared_file, conversation_id in self._shares.all():
            conversation = self._conversations.get(conversation_id) if shared_file == file_id else None
            if conversation is not None and conversation.has_member(user_id):
                return True
        return False

    async def record_file_share(self, file_id: UUID, conversation_id: UUID) -> None:
        self._shares.add((file_id, conversation_id))


class InMemoryMessageRepository:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._messages = tx.table(tx.store.messages)
        self._positions = tx.table(tx.store.positions)

    async def add(self, message: Message, position: int) -> None:
        if self._messages.has(message.id):
            raise self._tx.duplicate(DuplicateMessage(f"message {message.id} exists"))
        self._messages.put(message.id, attrs.evolve(message, new_events=[]))
        self._positions.put(message.id, position)
        message.new_events.clear()
        self._tx.check_at_commit(lambda: self._check_committed(message.id))

    def _check_committed(self, message_id: UUID) -> None:
        if message_id in self._messages.rows:
            raise DuplicateMessage(f"message {message_id} exists")

    async def get(self, message_id: UUID, *, for_update: bool = False) -> Message | None:
        if for_update:
            await self._tx.lock(("message", message_id))
        return self._messages.get(message_id)

    async def get_many(self, message_ids: Sequence[UUID], *, for_update: bool = False) -> dict[UUID, Message]:
        found: dict[UUID, Message] = {}
        for message_id in sorted(set(message_ids)):  # locks taken in id order, as the SQL adapter does
            if for_update:
                await self._tx.lock(("message", message_id))
            message = self._messages.get(message_id)
            if message is not None:
                message.history = []
                found[message_id] = message
        return found

    async def update_many(self, messages: Sequence[Message]) -> None:
        for message in messages:
            stored = self._messages.get(message.id)
            if stored is None:
                raise LookupError(f"message {message.id} is not stored")
            if not message.new_events and (message.read_by_all_at is None or stored.read_by_all_at is not None):
                continue
            stored.status = message.status
            stored.deliveries = dict(message.deliveries)
            stored.history.extend(message.new_events)
            stored.read_by_all_at = stored.read_by_all_at or message.read_by_all_at
            self._messages.put(message.id, stored)
            message.new_events.clear()

    async def list_for_conversation(self, conversation_id: UUID, *, limit: int, offset: int) -> tuple[list[Message], int]:
        """In the order they were stored."""
        rows = self._messages.select(lambda row: row.conversation_id == conversation_id)
        return rows[offset : offset + limit], len(rows)

    async def unfinished_before(
        self, before: datetime, limit: int, *, after: tuple[datetime, UUID] | None = None
    ) -> list[Message]:
        rows = self._messages.select(
            lambda row: not row.status.is_terminal
            and row.created_at < before
            and (after is None or (row.created_at, row.id) > after)
        )
        return sorted(rows, key=lambda row: (row.created_at, row.id))[:limit]


class InMemoryUploadRepository:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._uploads = tx.table(tx.store.uploads)

    async def add(self, upload: Upload) -> None:
        if self._uploads.has(upload.id):
            raise self._tx.duplicate(DuplicateKey(f"upload {upload.id} exists"))
        self._uploads.put(upload.id, upload)

    async def get(self, upload_id: UUID, *, for_update: bool = False) -> Upload | None:
        if for_update:
            await self._tx.lock(("upload", upload_id))
        return self._uploads.get(upload_id)

    async def update(self, upload: Upload) -> None:
        self._uploads.put(upload.id, upload)

    async def add_chunk(self, upload_id: UUID, index: int) -> None:
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise LookupError(f"upload {upload_id} is not stored")
        upload.received_chunks.add(index)
        self._uploads.put(upload_id, upload)

    async def open_for_owner(self, owner_id: UUID, now: datetime) -> OpenUploads:
        await self._tx.lock(("uploads opened by", owner_id))
        mine = self._uploads.select(
            lambda row: row.owner_id == owner_id and row.status is UploadStatus.PENDING and row.expires_at > now
        )
        return OpenUploads(len(mine), sum(row.file_size for row in mine))

    async def expired_before(self, now: datetime, limit: int) -> list[Upload]:
        """Pending uploads whose expiry has come, soonest expired first."""
        stale = self._uploads.select(lambda row: row.status is UploadStatus.PENDING and row.expires_at <= now)
        stale.sort(key=lambda row: row.expires_at)
        return stale[:limit]
