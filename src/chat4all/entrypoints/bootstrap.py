"""The composition root: `build(role, settings, **overrides)` makes one process, and is the only
place that does (the pattern of cosmicpython's `bootstrap`).

A role is what the process is for: `embedded` (the whole hub in one process: API, routing and
delivery over the in-process bus), `api` (the distributed profile's HTTP API: intake and the
outbox relay to Kafka) or `worker` (the distributed profile's routing and delivery, fed by
Kafka). The role picks the adapters (`profiles`, `distributed`), which of them run in the
background, and which events the process handles (its `Dispatcher`). Keyword overrides replace
any adapter by name (see `profiles.ADAPTER_NAMES`): the tests build their processes here, with
in-memory adapters, so the wiring they run is production's.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from chat4all.application.auth import TOKEN_CACHE_SIZE, Authenticate, FindUsers, Logout, RegisterUser, ResolveToken
from chat4all.application.channel_handles import ChannelHandles
from chat4all.application.conversations import CreateConversation, LeaveConversation, ViewConversations
from chat4all.application.delivery import DeliverMessage
from chat4all.application.dispatch import Dispatcher, Handler, log_dead_letters
from chat4all.application.inbound import ListUnmatchedReplies, ReceiveReply
from chat4all.application.login_throttle import LoginThrottle
from chat4all.application.messaging import ReadMessages, SendMessage
from chat4all.application.redrive import RedriveUnfinished
from chat4all.application.relay import RelayOutbox
from chat4all.application.routing import DeliverOnRoute, PublishEveryChannel, RouteMessage
from chat4all.application.uploads import CompleteUpload, ExpireUploads, InitiateUpload, UploadChunk, ViewUpload
from chat4all.application.work import DeadLettered, DeliveryRequested, RouteRequested
from chat4all.domain.quotas import UserQuotas
from chat4all.entrypoints.background import WakeSignal, every, relay_forever
from chat4all.entrypoints.distributed import API, WORKER, Distributed
from chat4all.entrypoints.hub import Adapters, Hub
from chat4all.entrypoints.profiles import Embedded, adapters_of
from chat4all.entrypoints.recipient import (
    EventAdapters,
    add_event_background,
    recipient_use_cases,
)
from chat4all.entrypoints.settings import Settings, SettingsError
from chat4all.entrypoints.webhooks import add_webhooks

EMBEDDED = "embedded"
ROLES = (EMBEDDED, API, WORKER)
log = logging.getLogger(__name__)

__all__ = ["ROLES", "Adapters", "Hub", "build", "serving_role"]


def build(role: str, settings: Settings, **overrides: Any) -> Hub:
    """A process for `role`, on the adapters of its profile but those given as `overrides`."""
    if role not in ROLES:
        raise ValueError(f"no role {role!r}; roles are {', '.join(ROLES)}")
    if settings.distributed != (role != EMBEDDED):
        raise SettingsError(f"the {role} role runs the {'embedded' if role == EMBEDDED else 'distributed'} profile")
    parts = Embedded(settings) if role == EMBEDDED else Distributed(settings, role)
    hub = wire(settings, adapters_of(parts, overrides), role)
    if hub.adapters.events is not None:
        add_recipient_side(hub, hub.adapters.events)
    if hub.adapters.webhooks is not None:
        add_webhooks(hub, hub.adapters.webhooks)
    if role in (EMBEDDED, API):
        add_api_background(hub)
    if role in (EMBEDDED, WORKER):
        add_delivery_background(hub)
    if role == EMBEDDED:
        consume_in_process(hub)
    return hub


def serving_role(settings: Settings) -> str:
    """The role of `chat4all serve` (and of the CLI's one-off commands) in the configured profile."""
    return API if settings.distributed else EMBEDDED


def add_recipient_side(hub: Hub, events: EventAdapters) -> None:
    """Live events, read state and history (see `entrypoints.recipient`), where users connect; the
    use cases that append to event logs wake this process's readers after they commit."""
    hub.send_message.notifier = hub.create_conversation.notifier = events.notifier
    hub.recipient = recipient_use_cases(hub.settings, hub.adapters.uow, hub.adapters.clock, events, hub.resolve_token)
    hub.adapters.on_start.extend(events.on_start)
    hub.adapters.on_stop.extend([*events.on_stop, hub.recipient.live_events.stop])  # stopped in reverse: first
    add_event_background(hub.background, hub.recipient)


def wire(settings: Settings, adapters: Adapters, role: str) -> Hub:
    deliver = _deliver(settings, adapters)
    route = RouteMessage(
        adapters.uow,
        adapters.clock,
        adapters.publisher,
        adapters.metrics,
        adapters.message_batches,
        DeliverOnRoute(deliver) if settings.deliver_while_routing else PublishEveryChannel(),
    )
    wake = WakeSignal()
    messaging = _conversations_and_messages(settings, adapters, wake)
    return Hub(
        settings=settings,
        adapters=adapters,
        **_accounts(settings, adapters),
        **messaging,
        **_channels(settings, adapters, messaging["send_message"]),
        **_uploads(settings, adapters),
        route_message=route,
        deliver_message=deliver,
        redrive_unfinished=RedriveUnfinished(adapters.uow, adapters.clock, adapters.publisher, settings.redrive_after),
        relay=RelayOutbox(adapters.outbox_reader, adapters.publisher),
        wake_relay=wake,
        dispatcher=Dispatcher(_handlers(role, route, deliver), tuple(adapters.connectors)),
    )


def _handlers(role: str, route: RouteMessage, deliver: DeliverMessage) -> dict[type, Handler]:
    """Which events the role handles: an API process none (it only publishes)."""
    if role == API:
        return {}
    handlers: dict[type, Handler] = {RouteRequested: route.handle, DeliveryRequested: deliver.handle}
    if role == EMBEDDED:  # a worker leaves dead letters in their topic, for inspection and replay
        handlers[DeadLettered] = log_dead_letters
    return handlers


def _deliver(settings: Settings, a: Adapters) -> DeliverMessage:
    return DeliverMessage(
        a.uow,
        a.clock,
        a.connectors,
        a.storage,
        a.sleep,
        settings.delivery_retry,
        a.publisher,
        a.metrics,
        a.message_batches,
        caches=a.caches,
        notifier=a.notifier,
        requests=a.publisher,
    )


def _accounts(settings: Settings, a: Adapters) -> dict[str, Any]:
    tokens = a.caches(TOKEN_CACHE_SIZE)
    return {
        "register_user": RegisterUser(a.uow, a.hasher, a.ids, a.clock),
        "authenticate": Authenticate(
            a.uow, a.hasher, a.tokens, a.clock, settings.token_lifetime, login_throttle(settings)
        ),
        "resolve_token": ResolveToken(a.uow, a.tokens, a.clock, settings.token_cache, tokens),
        "logout": Logout(a.uow, a.tokens, a.clock, tokens),
        "find_users": FindUsers(a.uow),
    }


def _conversations_and_messages(settings: Settings, a: Adapters, wake: WakeSignal) -> dict[str, Any]:
    return {
        "create_conversation": CreateConversation(a.uow, a.ids, a.clock, user_quotas(settings), notifier=a.notifier),
        "view_conversations": ViewConversations(a.uow),
        "leave_conversation": LeaveConversation(a.uow),
        "send_message": SendMessage(
            a.uow, a.clock, tuple(a.connectors), wake, a.metrics, a.intake, notifier=a.notifier, caches=a.caches
        ),
        "read_messages": ReadMessages(a.uow),
    }


def _channels(settings: Settings, a: Adapters, send_message: SendMessage) -> dict[str, Any]:
    channels = tuple(a.connectors)
    return {
        "channel_handles": ChannelHandles(a.uow, channels),
        "receive_reply": ReceiveReply(a.uow, a.clock, send_message, channels, settings.channels.inbound_secrets),
        "list_unmatched_replies": ListUnmatchedReplies(a.uow, channels),
    }


def _uploads(settings: Settings, a: Adapters) -> dict[str, Any]:
    return {
        "initiate_upload": InitiateUpload(
            a.uow, a.storage, a.ids, a.clock, settings.chunk_size, settings.upload_lifetime, user_quotas(settings)
        ),
        "upload_chunk": UploadChunk(a.uow, a.storage, a.clock),
        "complete_upload": CompleteUpload(a.uow, a.storage, a.clock),
        "view_upload": ViewUpload(a.uow, a.storage, a.clock),
        "expire_uploads": ExpireUploads(a.uow, a.storage, a.clock),
    }


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
    resolve = hub.resolve_token
    if resolve.cache_for > timedelta(0):
        every_s = resolve.reconfirm_every.total_seconds()
        hub.background.add("token-reconfirm", lambda: every(every_s, resolve.reconfirm_used, "token-reconfirm"))


def add_delivery_background(hub: Hub) -> None:
    """Where routing and delivery run (the embedded process, or each worker)."""
    hub.background.add("redrive-unfinished", lambda: every(15.0, hub.redrive_unfinished.execute, "redrive-unfinished"))


def consume_in_process(hub: Hub) -> None:
    """The embedded process's events go through its in-process bus to its dispatcher."""
    bus = hub.adapters.bus
    if bus is None:
        return
    for stream in hub.dispatcher.streams():
        bus.subscribe(stream, partial(hub.dispatcher.handle, stream))
    # After the bus starts, before the relay does (a background task): the resumed messages go
    # first, in acceptance order, and the relay's copies of their events come after them.
    hub.adapters.on_start.append(partial(resume_unfinished, hub))


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
