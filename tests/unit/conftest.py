"""The hub the use case tests drive: built by the composition root, as production builds it, on
in-memory adapters, plus a few helpers to set the scene."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import attrs
import pytest

from chat4all.application.messaging import SendRequest
from chat4all.application.sending import RetryPolicy
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.messages import Message, Priority
from chat4all.domain.uploads import Upload
from chat4all.domain.users import User
from chat4all.entrypoints.bootstrap import EMBEDDED, build
from chat4all.entrypoints.settings import load_settings
from tests.fakes import (
    InMemoryEventNotifier,
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
# The defaults, but for sizes small enough to write out in a test, and routing that publishes every
# channel (the tests drive routing and delivery one step at a time).
SETTINGS = attrs.evolve(
    load_settings({}),
    chunk_size=CHUNK_SIZE,
    token_lifetime=TOKEN_LIFETIME,
    upload_lifetime=UPLOAD_LIFETIME,
    token_cache=timedelta(0),
    deliver_while_routing=False,
    delivery_retry=RETRY,
    redrive_after=timedelta(seconds=30),
)


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
        self.notifier = InMemoryEventNotifier()
        self.process = build(
            EMBEDDED,
            SETTINGS,
            uow=self.uow,
            storage=self.storage,
            publisher=self.publisher,
            outbox_reader=InMemoryOutboxReader(self.store),
            connectors=self.connectors,
            hasher=PlainTestHasher(),
            tokens=self.tokens,
            clock=self.clock,
            ids=self.ids,
            sleep=self._sleep,
            notifier=self.notifier,
        )
        process = self.process
        self.register = process.register_user
        self.authenticate = process.authenticate
        self.resolve_token = process.resolve_token
        self.logout = process.logout
        self.find_users = process.find_users
        self.create_conversation = process.create_conversation
        self.view_conversations = process.view_conversations
        self.leave = process.leave_conversation
        self.send = process.send_message
        self.read = process.read_messages
        self.route = process.route_message
        self.deliver = process.deliver_message
        self.initiate_upload = process.initiate_upload
        self.upload_chunk = process.upload_chunk
        self.complete_upload = process.complete_upload
        self.view_upload = process.view_upload
        self.expire_uploads = process.expire_uploads
        self.relay = process.relay
        self.redrive = process.redrive_unfinished

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
