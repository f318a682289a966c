"""The composition root: the one place that picks adapters for a profile and wires use cases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import attrs

from chat4all.adapters.connectors import mock_connectors
from chat4all.adapters.metrics import PrometheusMetrics
from chat4all.adapters.security import Argon2PasswordHasher, OpaqueTokenIssuer
from chat4all.adapters.system import RandomIds, SystemClock
from chat4all.adapters.caching import ExpiringCache
from chat4all.application.auth import TOKEN_CACHE_SIZE, Authenticate, FindUsers, Logout, RegisterUser, ResolveToken
from chat4all.application.conversations import CreateConversation, LeaveConversation, ViewConversations
from chat4all.application.delivery import DeliverMessage, RetryPolicy, RouteMessage
from chat4all.application.login_throttle import LoginThrottle
from chat4all.application.messaging import ReadMessages, SendMessage
from chat4all.application.ports import (
    ChannelConnector,
    Clock,
    EventPublisher,
    FileStorage,
    IdGenerator,
    MessageBatches,
    MessageIntake,
    OutboxReader,
    PasswordHasher,
    UnitOfWorkFactory,
)
from chat4all.application.redrive import RedriveUnfinished
from chat4all.application.relay import RelayOutbox
from chat4all.application.topics import DEAD_LETTERS, MESSAGE_PROCESSING, channel_topic
from chat4all.application.uploads import CompleteUpload, ExpireUploads, InitiateUpload, UploadChunk, ViewUpload
from chat4all.domain.quotas import UserQuotas
from chat4all.entrypoints.background import BackgroundTasks, WakeSignal, every, relay_forever
from chat4all.entrypoints.settings import Settings

Check = Callable[[], Awaitable[None]]
log = logging.getLogger(__name__)


@attrs.define
class Adapters:
    uow: UnitOfWorkFactory
    storage: FileStorage
    publisher: EventPublisher
    outbox_reader: OutboxReader
    connectors: Mapping[str, ChannelConnector]
    hasher: PasswordHasher
    clock: Clock = attrs.field(factory=SystemClock)
    ids: IdGenerator = attrs.field(factory=RandomIds)
    metrics: PrometheusMetrics = attrs.field(factory=PrometheusMetrics)
    checks: dict[str, Check] = attrs.field(factory=dict)
    intake: MessageIntake | None = None  # None: the writes of SendMessage in a unit of work
    message_batches: MessageBatches | None = None  # None: routing and delivery read and write in units of work
    on_start: list[Callable[[], Awaitable[None]]] = attrs.field(factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = attrs.field(factory=list)


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
    background: BackgroundTasks = attrs.field(factory=BackgroundTasks)

    async def handle_event(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Runs the use case an event asks for; shared by the in-process bus and the Kafka worker."""
        message_id = UUID(str(payload["message_id"]))
        if topic == MESSAGE_PROCESSING:
            await self.route_message.execute(message_id)
        else:
            await self.deliver_message.execute(message_id, str(payload["channel"]))

    async def handle_events(self, topic: str, payloads: Sequence[Mapping[str, Any]]) -> None:
        """`handle_event` for many events of one topic at once, as one batch of the use case."""
        if topic == MESSAGE_PROCESSING:
            await self.route_message.execute_batch([UUID(str(payload["message_id"])) for payload in payloads])
        else:
            await self.deliver_message.execute_batch(
                [(UUID(str(payload["message_id"])), str(payload["channel"])) for payload in payloads]
            )

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


def wire(settings: Settings, adapters: Adapters) -> Hub:
    a = adapters
    wake = WakeSignal()
    tokens = ExpiringCache(TOKEN_CACHE_SIZE)
    deliver = DeliverMessage(
        a.uow, a.clock, a.connectors, a.storage, asyncio.sleep, RetryPolicy(), a.publisher, a.metrics, a.message_batches,
        caches=ExpiringCache,
    )
    return Hub(
        settings=settings,
        adapters=a,
        register_user=RegisterUser(a.uow, a.hasher, a.ids, a.clock),
        authenticate=Authenticate(
            a.uow, a.hasher, OpaqueTokenIssuer(), a.clock, settings.token_lifetime, login_throttle(settings)
        ),
        resolve_token=ResolveToken(a.uow, OpaqueTokenIssuer(), a.clock, settings.token_cache, tokens),
        logout=Logout(a.uow, OpaqueTokenIssuer(), a.clock, tokens),
        find_users=FindUsers(a.uow),
        create_conversation=CreateConversation(a.uow, a.ids, a.clock, user_quotas(settings)),
        view_conversations=ViewConversations(a.uow),
        leave_conversation=LeaveConversation(a.uow),
        send_message=SendMessage(a.uow, a.clock, tuple(a.connectors), wake, a.metrics, a.intake, caches=ExpiringCache),
        read_messages=ReadMessages(a.uow),
        initiate_upload=InitiateUpload(
            a.uow, a.storage, a.ids, a.clock, settings.chunk_size, settings.upload_lifetime, user_quotas(settings)
        ),
        upload_chunk=UploadChunk(a.uow, a.storage, a.clock),
        complete_upload=CompleteUpload(a.uow, a.storage, a.clock),
        view_upload=ViewUpload(a.uow, a.storage, a.clock),
        expire_uploads=ExpireUploads(a.uow, a.storage, a.clock),
        route_message=RouteMessage(
            a.uow, a.clock, a.publisher, a.metrics, a.message_batches, deliver if settings.deliver_while_routing else None
        ),
        deliver_message=deliver,
        redrive_unfinished=RedriveUnfinished(a.uow, a.clock, a.publisher),
        relay=RelayOutbox(a.outbox_reader, a.publisher),
        wake_relay=wake,
    )


def login_throttle(settings: Settings) -> LoginThrottle:
    return LoginThrottle(
        max_failures_per_user_and_address=settings.login_max_failures_per_user_and_address,
        max_failures_per_address=settings.login_max_failures_per_address,
        max_failures_per_user=settings.login_max_failures_per_user,
        window=settings.login_window,
    )


def user_quotas(settings: Settings) -> UserQuotas:
    return UserQuotas(
        max_open_uploads=settings.quota_open_uploads,
        max_open_upload_bytes=settings.quota_open_upload_bytes,
        max_conversations_per_hour=settings.quota_conversations_per_hour,
    )


async def log_dead_letters(payloads: Sequence[Mapping[str, Any]]) -> None:
    for payload in payloads:
        log.warning("dead letter: message %s on %s: %s", payload["message_id"], payload["channel"], payload["reason"])


def add_api_background(hub: Hub) -> None:
    hub.background.add(
        "outbox-relay",
        lambda: relay_forever(
            hub.relay.execute,
            hub.wake_relay,
            full_batch=hub.relay.batch_size,
            linger=hub.settings.outbox_relay_linger.total_seconds(),
        ),
    )
    hub.background.add("upload-expiry", lambda: every(60.0, hub.expire_uploads.execute, "upload-expiry"))
    hub.background.add(
        "login-failure-purge", lambda: every(300.0, hub.authenticate.forget_stale_failures, "login-failure-purge")
    )


def add_delivery_background(hub: Hub) -> None:
    """Where routing and delivery run (the embedded process, or each worker)."""
    hub.background.add("redrive-unfinished", lambda: every(15.0, hub.redrive_unfinished.execute, "redrive-unfinished"))


async def resume_unfinished(hub: Hub) -> None:
    """Routes again, at start-up, every message a previous run left unfinished. Only where events
    live in memory (the embedded bus): a distributed worker finds its unfinished events in Kafka,
    from its group's committed offsets, and re-sending every unfinished message whenever a worker
    or API process starts would put a copy of the backlog behind the backlog."""
    try:
        resumed = await hub.redrive_unfinished.execute_all()
    except Exception:  # the periodic sweep re-drives them later; not a reason to refuse to start
        log.exception("could not resume the messages left unfinished at start-up")
        return
    if resumed:
        log.warning("resumed %d messages a previous run left unfinished", resumed)


def hasher_for(settings: Settings) -> Argon2PasswordHasher:
    return Argon2PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib, parallelism=2
    )


def build_embedded(settings: Settings, **overrides: Any) -> Hub:
    """One process: SQLite, files on local disk, and an in-process bus running router and connectors."""
    from chat4all.adapters.bus import InProcessEventBus
    from chat4all.adapters.sql.engine import check_database, create_engine
    from chat4all.adapters.sql.ledger import SqlSendLedger
    from chat4all.adapters.sql.outbox import SqlOutboxReader
    from chat4all.adapters.sql.sqlite.intake import SqliteMessageIntake
    from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
    from chat4all.adapters.storage.local import LocalFileStorage

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    bus = InProcessEventBus()
    storage = LocalFileStorage(settings.data_dir / "files")
    adapters = Adapters(
        uow=SqlUnitOfWorkFactory(engine),
        storage=storage,
        publisher=bus,
        outbox_reader=SqlOutboxReader(engine),
        connectors=overrides.pop("connectors", None)
        or mock_connectors(ledger=SqlSendLedger(engine), failure_rate=settings.connector_failure_rate),
        hasher=overrides.pop("hasher", None) or hasher_for(settings),
        checks={"database": lambda: check_database(engine), "storage": storage.check},
        intake=overrides.pop("intake", None) or SqliteMessageIntake(engine),
        on_stop=[bus.stop, engine.dispose],
        **overrides,
    )
    hub = wire(settings, adapters)
    for topic in [MESSAGE_PROCESSING, *(channel_topic(name) for name in adapters.connectors)]:
        bus.subscribe(topic, lambda payloads, topic=topic: hub.handle_events(topic, payloads))
    bus.subscribe(DEAD_LETTERS, log_dead_letters)
    adapters.on_start.append(bus.start)
    # Before the relay starts (a background task): the resumed messages go first, in acceptance
    # order, and the relay's copies of their events come after them.
    adapters.on_start.append(lambda: resume_unfinished(hub))
    add_api_background(hub)
    add_delivery_background(hub)
    return hub
