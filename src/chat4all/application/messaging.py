"""Accepting messages and reading them back."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

import attrs

from chat4all.application.batched_loads import BatchedLoads
from chat4all.application.errors import DuplicateMessage
from chat4all.application.ports import (
    Cache,
    CacheFactory,
    Clock,
    DeliveryMetrics,
    EventNotifier,
    MessageIntake,
    NoMetrics,
    OutboxEvent,
    OutboxSignal,
    UnitOfWork,
    UnitOfWorkFactory,
)
from chat4all.application.reading import store_new_message
from chat4all.application.upload_access import may_read
from chat4all.application.work import RouteRequested, encode
from chat4all.domain.conversations import Conversation, ConversationType
from chat4all.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from chat4all.domain.failover import DeliveryAttempt, check_failover
from chat4all.domain.messages import FilePayload, Message, MessageDraft, Priority, TextPayload
from chat4all.domain.paging import check_page
from chat4all.domain.receipts import Receipt
from chat4all.domain.uploads import UploadStatus

ALL_CHANNELS = "all"


@attrs.frozen
class SendRequest:
    message_id: UUID
    conversation_id: UUID
    sender_id: UUID
    recipient_id: UUID | None
    channels: tuple[str, ...]
    text: str | None
    file_id: UUID | None
    priority: Priority
    failover: tuple[str, ...] = ()  # see domain.failover
    origin: str | None = None  # the channel a reply came in from (see application.inbound)


MEMBERSHIP_CACHE_SIZE = 10_000


@attrs.define
class UnitOfWorkIntake:
    """The `MessageIntake` of any unit of work: the writes of one accepted message in one transaction.
    (An adapter may do the same in fewer round trips; the PostgreSQL one does it in one statement.)"""

    uow: UnitOfWorkFactory

    async def accept(self, message: Message, conversation: Conversation, routing: OutboxEvent) -> bool:
        async with self.uow() as uow:
            try:
                await store_new_message(uow, conversation, message)
            except DuplicateMessage:
                return False
            if isinstance(message.payload, FilePayload):
                await uow.conversations.record_file_share(message.payload.file_id, conversation.id)
            await uow.outbox.add(routing.topic, routing.key, routing.payload)
            try:
                await uow.commit()
            except DuplicateMessage:  # a concurrent request with the same id committed first
                return False
        return True


@attrs.define
class SendMessage:
    """Stores a message and its routing event in one transaction.

    Rules: the caller sends as themself, into a conversation they belong to, to another
    member if `to` is given, over known channels (`all` = every connector), with 1-4096
    characters of text or a completed upload they may share. The same message_id with the
    same content is accepted again without creating anything; with other content it conflicts.
    Every member (the sender's other sessions too) gets `message.created` in their event log,
    committed with the message; `notifier` wakes their waiting readers after the commit.

    A private conversation's members never change (it cannot be left), so they are read from the
    database once per process and kept (up to MEMBERSHIP_CACHE_SIZE conversations). A group's are
    read on every send: a member who left cannot send into it from the moment the leave committed.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    channels: Collection[str]
    outbox_signal: OutboxSignal | None = None
    metrics: DeliveryMetrics = attrs.field(factory=NoMetrics)
    intake: MessageIntake | None = None
    notifier: EventNotifier | None = None
    caches: CacheFactory = attrs.field(kw_only=True)
    _conversations: Cache[UUID, Conversation] = attrs.field(init=False)
    _loads: BatchedLoads[UUID, Conversation] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._conversations = self.caches(MEMBERSHIP_CACHE_SIZE)
        self._loads = BatchedLoads(self._read_conversations)
        if self.intake is None:
            self.intake = UnitOfWorkIntake(self.uow)

    async def execute(self, caller: UUID, request: SendRequest) -> Message:
        if request.sender_id != caller:
            raise Forbidden("'from' must be the authenticated user", code="sender_mismatch")
        channels = self._resolve_channels(request.channels)
        failover = check_failover(channels, self._known(request.failover, "failover"))
        conversation = await self._conversation_for(caller, request)
        if request.file_id is None:
            payload: TextPayload | FilePayload = TextPayload(request.text or "")
        else:
            async with self.uow() as uow:
                payload = await self._file_payload(uow, caller, request.file_id)
        draft = MessageDraft(
            request.message_id,
            request.conversation_id,
            caller,
            request.recipient_id,
            channels,
            payload,
            request.priority,
            failover=failover,
            origin=request.origin,
        )
        message = Message.accept(draft, self.clock.now())
        routing = encode(RouteRequested(message.id), conversation.id)
        assert self.intake is not None
        if await self.intake.accept(message, conversation, routing):
            self.metrics.message_accepted()
            if self.outbox_signal is not None:
                self.outbox_signal.notify()
            if self.notifier is not None:
                self.notifier.notify(conversation.members)
            return message
        async with self.uow() as uow:
            existing = await uow.messages.get(request.message_id)
        if existing is None:
            raise RuntimeError("message vanished after a duplicate-key clash")
        if draft.fingerprint() != existing.fingerprint:
            raise Conflict("message_id was already used for a different message", code="message_id_conflict")
        return existing

    def _resolve_channels(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        if not requested:
            raise InvalidInput("channels must not be empty", field_errors={"channels": ["at least one channel"]})
        self._known(requested, "channels", ALL_CHANNELS)
        if ALL_CHANNELS in requested:
            if not self.channels:
                raise InvalidInput("no delivery channels are configured", code="unknown_channel")
            return tuple(sorted(self.channels))
        return tuple(dict.fromkeys(requested))

    def _known(self, requested: tuple[str, ...], field: str, *extra: str) -> tuple[str, ...]:
        unknown = sorted(set(requested) - set(self.channels) - set(extra))
        if unknown:
            allowed = ", ".join([*sorted(self.channels), *extra])
            raise InvalidInput(
                f"unknown channels in {field}: {', '.join(unknown)} (allowed: {allowed})",
                code="unknown_channel",
                field_errors={field: [f"allowed: {allowed}"]},
            )
        return requested

    async def _load_conversation(self, conversation_id: UUID) -> Conversation:
        conversation = await self._loads.load(conversation_id)  # with the others missed meanwhile
        if conversation is None:
            raise NotFound("no such conversation", code="conversation_not_found")
        if conversation.type is ConversationType.PRIVATE:
            self._conversations.put(conversation.id, conversation)
        return conversation

    async def _read_conversations(self, conversation_ids: list[UUID]) -> dict[UUID, Conversation]:
        async with self.uow() as uow:
            return await uow.conversations.get_many(conversation_ids)

    async def _conversation_for(self, caller: UUID, request: SendRequest) -> Conversation:
        conversation = await self._conversations.get_or_load(
            request.conversation_id, self.clock.now(), lambda: self._load_conversation(request.conversation_id)
        )
        conversation.require_member(caller)
        if request.recipient_id is not None and (
            request.recipient_id == caller or not conversation.has_member(request.recipient_id)
        ):
            raise InvalidInput(
                "'to' must be another member of the conversation",
                code="invalid_recipient",
                field_errors={"to": ["another member of the conversation"]},
            )
        return conversation

    async def _file_payload(self, uow: UnitOfWork, caller: UUID, file_id: UUID) -> FilePayload:
        upload = await uow.uploads.get(file_id)
        if upload is None:
            raise NotFound("no such file", code="file_not_found")
        if not await may_read(uow, upload, caller):
            raise Forbidden("you may only send files you uploaded or received", code="file_forbidden")
        if upload.status is not UploadStatus.COMPLETED or upload.checksum is None:
            raise InvalidInput(
                "the file upload is not completed", code="file_not_completed", field_errors={"payload.file_id": ["not completed"]}
            )
        return FilePayload(upload.id, upload.filename, upload.file_size, upload.content_type, upload.checksum)


@attrs.define
class ReadMessages:
    uow: UnitOfWorkFactory

    async def list(self, caller: UUID, conversation_id: UUID, *, limit: int, offset: int) -> tuple[list[Message], int]:
        check_page(limit, offset)
        async with self.uow() as uow:
            conversation = await uow.conversations.get(conversation_id)
            if conversation is None:
                raise NotFound("no such conversation", code="conversation_not_found")
            conversation.require_member(caller)
            return await uow.messages.list_for_conversation(conversation_id, limit=limit, offset=offset)

    async def get(self, caller: UUID, message_id: UUID) -> Message:
        async with self.uow() as uow:
            message = await uow.messages.get(message_id)
            if message is None:
                raise NotFound("no such message", code="message_not_found")
            conversation = await uow.conversations.get(message.conversation_id)
        if conversation is None or not conversation.has_member(caller):
            raise Forbidden("you are not a member of this message's conversation", code="not_a_member")
        return message

    async def detail(
        self, caller: UUID, message_id: UUID
    ) -> tuple[Message, list[Receipt], dict[tuple[str, UUID], str], list[DeliveryAttempt]]:
        """`get`, with a receipt per recipient (members only, as the message itself), the ids the
        channels' providers gave its copies, by (channel, recipient), and, if it was sent with
        failover, its delivery attempts per recipient."""
        message = await self.get(caller, message_id)
        async with self.uow() as uow:
            receipts = await uow.receipts.for_message(message_id)
            provider_ids = await uow.channels.provider_ids(message_id)
            attempts = await uow.receipts.attempts_for(message_id) if message.failover else []
        return message, receipts, provider_ids, attempts
