"""Every use case wired to the in-memory adapters, plus a few helpers to set the scene."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import attrs
import pytest

from chat4all.adapters.caching import ExpiringCache
from chat4all.application.auth import TOKEN_CACHE_SIZE, Authenticate, FindUsers, Logout, RegisterUser, ResolveToken
from chat4all.application.conversations import CreateConversation, LeaveConversation, ViewConversations
from chat4all.application.delivery import DeliverMessage, RetryPolicy, RouteMessage
from chat4all.application.messaging import ReadMessages, SendMessage, SendRequest
from chat4all.application.redrive import RedriveUnfinished
from chat4all.application.relay import RelayOutbox
from chat4all.application.uploads import (
    CompleteUpload,
    ExpireUploads,
    InitiateUpload,
    UploadChunk,
    ViewUpload,
)
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.messages import Message, Priority
from chat4all.domain.uploads import Upload
from chat4all.domain.users import User
from tests.fakes import (
    InMemoryFileStorage,
    InMemoryOutboxReader,
    InMemoryStore,
    InMemoryUnitOfWorkFactory,
    ManualClock,
    PlainTestHasher,
    PredictableTokenIssuer,
    RecordingConnector,
    RecordingPublisher,
    SequentialIds,
)

PASSWORD = "correct horse battery"
CHANNELS = ("instagram", "whatsapp")
CHUNK_SIZE = 4
TOKEN_LIFETIME = timedelta(hours=1)
UPLOAD_LIFETIME = timedelta(hours=24)
RETRY = RetryPolicy(attempts=3, first_delay_seconds=0.5, multiplier=2.0)


@attrs.define(slots=False)
class Hub:
    password = PASSWORD
    channels = CHANNELS
    chunk_size = CHUNK_SIZE
    token_lifetime = TOKEN_LIFETIME
    upload_lifetime = UPLOAD_LIFETIME
    retry = RETRY

    clock: ManualClock
    ids: SequentialIds
    store: InMemoryStore
    uow: InMemoryUnitOfWorkFactory
    storage: InMemoryFileStorage
    publisher: RecordingPublisher
    tokens: PredictableTokenIssuer
    connectors: dict[str, RecordingConnector]
    sleeps: list[float]

    def __attrs_post_init__(self) -> None:
        hasher = PlainTestHasher()
        self.register = RegisterUser(self.uow, hasher, self.ids, self.clock)
        self.authenticate = Authenticate(self.uow, hasher, self.tokens, self.clock, TOKEN_LIFETIME)
        tokens = ExpiringCache(TOKEN_CACHE_SIZE)
        self.resolve_token = ResolveToken(self.uow, self.tokens, self.clock, timedelta(0), tokens)
        self.logout = Logout(self.uow, self.tokens, self.clock, tokens)
        self.find_users = FindUsers(self.uow)
        self.create_conversation = CreateConversation(self.uow, self.ids, self.clock)
        self.view_conversations = ViewConversations(self.uow)
        self.leave = LeaveConversation(self.uow)
        self.send = SendMessage(self.uow, self.clock, tuple(self.connectors), caches=ExpiringCache)
        self.read = ReadMessages(self.uow)
        self.route = RouteMessage(self.uow, self.clock, self.publisher)
        self.deliver = DeliverMessage(self.uow, self.clock, self.connectors, self.storage, self._sleep, RETRY, caches=ExpiringCache)
        self.initiate_upload = InitiateUpload(self.uow, self.storage, self.ids, self.clock, CHUNK_SIZE, UPLOAD_LIFETIME)
        self.upload_chunk = UploadChunk(self.uow, self.storage, self.clock)
        self.complete_upload = CompleteUpload(self.uow, self.storage, self.clock)
        self.view_upload = ViewUpload(self.uow, self.storage, self.clock)
        self.expire_uploads = ExpireUploads(self.uow, self.storage, self.clock)
        self.relay = RelayOutbox(InMemoryOutboxReader(self.store), self.publisher)
        self.redrive = RedriveUnfinished(self.uow, self.clock, self.publisher, older_than=timedelta(seconds=30))

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    # --- scene setting -------------------------------------------------------------------

    async def user(self, username: str) -> User:
        return await self.register.execute(username, PASSWORD)

    async def users(self, *usernames: str) -> list[User]:
        return [await self.user(username) for username in usernames]

    async def conversation(self, creator: User, *others: User) -> Conversation:
        kind = ConversationType.PRIVATE if len(others) == 1 else ConversationType.GROUP
        created = await self.create_conversation.execute(
            caller=creator.id,
            type=kind,
            members=[creator.id, *(other.id for other in others)],
            metadata=ConversationMetadata(),
        )
        return created.conversation

    def request(
        self,
        sender: User,
        conversation: Conversation,
        text: str | None = "hello",
        *,
        channels: tuple[str, ...] = ("whatsapp",),
        to: User | None = None,
        file_id: UUID | None = None,
        message_id: UUID | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> SendRequest:
        return SendRequest(
            message_id=message_id or self.ids.new_id(),
            conversation_id=conversation.id,
            sender_id=sender.id,
            recipient_id=to.id if to else None,
            channels=channels,
            text=None if file_id else text,
            file_id=file_id,
            priority=priority,
        )

    async def send_text(self, sender: User, conversation: Conversation, text: str = "hello", **options) -> Message:
        return await self.send.execute(sender.id, self.request(sender, conversation, text, **options))

    async def start_upload(self, owner: User, data: bytes, filename: str = "photo.jpg") -> Upload:
        return await self.initiate_upload.execute(owner.id, filename, len(data), "image/jpeg")

    async def send_chunks(self, owner: User, upload: Upload, data: bytes, indices: list[int] | None = None) -> None:
        for index in range(upload.total_chunks) if indices is None else indices:
            await self.upload_chunk.execute(owner.id, upload.id, index, data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE])

    async def uploaded_file(self, owner: User, data: bytes = b"0123456789", filename: str = "photo.jpg") -> Upload:
        upload = await self.start_upload(owner, data, filename)
        await self.send_chunks(owner, upload, data)
        return await self.complete_upload.execute(owner.id, upload.id, self.sha256(data))

    @staticmethod
    def sha256(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    async def message(self, message_id: UUID) -> Message:
        async with self.uow() as uow:
            message = await uow.messages.get(message_id)
        assert message is not None
        return message

    async def upload(self, upload_id: UUID) -> Upload:
        async with self.uow() as uow:
            upload = await uow.uploads.get(upload_id)
        assert upload is not None
        return upload


def build_hub() -> Hub:
    store = InMemoryStore()
    return Hub(
        clock=ManualClock(),
        ids=SequentialIds(),
        store=store,
        uow=InMemoryUnitOfWorkFactory(store),
        storage=InMemoryFileStorage(),
        publisher=RecordingPublisher(),
        tokens=PredictableTokenIssuer(),
        connectors={name: RecordingConnector(name) for name in CHANNELS},
        sleeps=[],
    )


@pytest.fixture
def hub() -> Hub:
    return build_hub()


@pytest.fixture
def make_hub() -> Callable[[], Hub]:
    """For hypothesis tests, which need a fresh hub per example."""
    return build_hub
