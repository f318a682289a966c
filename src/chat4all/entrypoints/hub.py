"""What the composition root (`entrypoints.bootstrap`) hands an entrypoint: one process's adapters,
its use cases wired to them, the dispatcher of its events, and its lifecycle.

Nothing here makes an adapter; routes and commands reach use cases through a `Hub`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from chat4all.application.auth import Authenticate, FindUsers, Logout, RegisterUser, ResolveToken
from chat4all.application.channel_handles import ChannelHandles
from chat4all.application.conversations import CreateConversation, LeaveConversation, ViewConversations
from chat4all.application.delivery import DeliverMessage
from chat4all.application.dispatch import Dispatcher
from chat4all.application.inbound import ListUnmatchedReplies, ReceiveReply
from chat4all.application.messaging import ReadMessages, SendMessage
from chat4all.application.ports import (
    CacheFactory,
    ChannelConnector,
    Clock,
    EventPublisher,
    FileStorage,
    IdGenerator,
    MessageBatches,
    MessageIntake,
    OutboxReader,
    PasswordHasher,
    TokenIssuer,
    UnitOfWorkFactory,
)
from chat4all.application.redrive import RedriveUnfinished
from chat4all.application.relay import RelayOutbox
from chat4all.application.routing import RouteMessage
from chat4all.application.uploads import CompleteUpload, ExpireUploads, InitiateUpload, UploadChunk, ViewUpload
from chat4all.entrypoints.background import BackgroundTasks, WakeSignal
from chat4all.entrypoints.settings import Settings

Check = Callable[[], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


@attrs.define
class Adapters:
    """Every adapter a process runs on, by the name `bootstrap.build` takes an override under."""

    uow: UnitOfWorkFactory
    storage: FileStorage
    publisher: EventPublisher
    outbox_reader: OutboxReader
    connectors: Mapping[str, ChannelConnector]
    hasher: PasswordHasher
    tokens: TokenIssuer
    clock: Clock
    ids: IdGenerator
    metrics: Any  # DeliveryMetrics that also renders the Prometheus text (`render`, `registry`)
    caches: CacheFactory
    sleep: Callable[[float], Awaitable[None]]
    intake: MessageIntake | None  # None: the writes of SendMessage in a unit of work
    message_batches: MessageBatches | None  # None: routing and delivery read and write in units of work
    bus: Any  # the in-process event bus the embedded process consumes (None elsewhere)
    notifier: Any  # EventNotifier: wakes this process's readers of the user event log (None: nobody waits here)
    events: Any  # EventAdapters: the live side's event log readers (entrypoints.recipient); None: no live side
    webhooks: Any  # WebhookAdapters (entrypoints.webhooks); None: no webhooks in this process
    # What the process must check, start and stop: filled as the root makes adapters.
    checks: dict[str, Check] = attrs.field(factory=dict)
    on_start: list[Hook] = attrs.field(factory=list)
    on_stop: list[Hook] = attrs.field(factory=list)


@attrs.define
class Hub:
    """Every use case, wired, plus the lifecycle of what the process runs in the background."""

    settings: Settings
    adapters: Adapters
    register_user: RegisterUser
    authenticate: Authenticate
    resolve_token: ResolveToken
    logout: Logout
    find_users: FindUsers
    create_conversation: CreateConversation
    view_conversations: ViewConversations
    leave_conversation: LeaveConversation
    send_message: SendMessage
    read_messages: ReadMessages
    initiate_upload: InitiateUpload
    upload_chunk: UploadChunk
    complete_upload: CompleteUpload
    view_upload: ViewUpload
    expire_uploads: ExpireUploads
    route_message: RouteMessage
    deliver_message: DeliverMessage
    redrive_unfinished: RedriveUnfinished
    relay: RelayOutbox
    wake_relay: WakeSignal
    dispatcher: Dispatcher  # the events this process handles, whichever transport brings them
    channel_handles: ChannelHandles
    receive_reply: ReceiveReply
    list_unmatched_replies: ListUnmatchedReplies
    background: BackgroundTasks = attrs.field(factory=BackgroundTasks)
    recipient: Any = None  # RecipientUseCases, where `adapters.events` is (see bootstrap.add_recipient_side)
    webhooks: Any = None  # ManageWebhooks, where `adapters.webhooks` is (see entrypoints.webhooks)

    async def start(self) -> None:
        for hook in self.adapters.on_start:
            await hook()
        await self.background.start()

    async def stop(self) -> None:
        # Background token refreshes first: they read through the adapters the hooks close.
        await self.resolve_token.cache.close()
        await self.background.stop()
        for hook in reversed(self.adapters.on_stop):
            await hook()

    async def readiness(self) -> dict[str, str]:
        async def probe(check: Check) -> str:
            try:
                await asyncio.wait_for(check(), timeout=2.0)
                return "ok"
            except Exception as error:  # any failure means "not ready"; the kind is enough for operators
                return f"unavailable: {type(error).__name__}"

        names = list(self.adapters.checks)
        results = await asyncio.gather(*(probe(self.adapters.checks[name]) for name in names))
        return dict(zip(names, results, strict=True))
