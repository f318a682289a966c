"""Outbound webhooks in the composition root: their adapters, the use cases routes call, and the
loops that feed and send deliveries where routing and delivery run (the embedded process, each
worker); an API process of the distributed profile only manages them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from chat4all.application.ports.webhooks import AddressResolver, WebhookSigner, WebhookStore, WebhookTransport
from chat4all.application.webhook_feed import FeedWebhooks, PurgeWebhookDeliveries
from chat4all.application.webhook_sender import SendWebhooks
from chat4all.application.webhooks import ManageWebhooks, WebhookPolicy
from chat4all.entrypoints.background import every
from chat4all.entrypoints.hub import Hub

# The feeder is poked when events are appended (see `application.webhook_feed`); the poll is
# the safety net for a poke that was lost, the spacing lets a burst of appends make one round.
FEED_POLL = 1.0  # seconds between looks for new events of webhooks' owners, without a poke
FEED_SPACING = 0.05  # seconds at least from one round's start to the next's
SEND_POLL = 0.5  # seconds between looks for due retries, when nothing wakes the sender sooner


@attrs.define
class WebhookAdapters:
    store: WebhookStore
    resolver: AddressResolver
    signer: WebhookSigner
    transport: WebhookTransport | None  # None: this process does not send (a distributed API)
    # Registers a callback run whenever events are appended to users' logs (None: the poll alone).
    appended: Callable[[Callable[[], None]], None] | None = None
    on_start: list[Callable[[], Awaitable[None]]] = attrs.field(factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = attrs.field(factory=list)


def postgres_webhook_adapters(database_url: str, engine: Any, sending: bool, allow_private: bool) -> WebhookAdapters:
    """A process that sends (a worker) hears every commit of events through a LISTEN connection
    of its own; the API processes, which only manage webhooks, need none."""
    adapters = sql_webhook_adapters(engine, sending=sending, allow_private=allow_private)
    if sending:
        from chat4all.adapters.sql.postgres.listener import watch_appends
        from chat4all.adapters.sql.postgres.listening import PostgresListener

        listener = PostgresListener(database_url)
        adapters.appended = lambda heard: watch_appends(listener, heard)
        adapters.on_start.append(listener.start)
        adapters.on_stop.append(listener.stop)
    return adapters


def sql_webhook_adapters(
    engine: Any,
    *,
    sending: bool,
    allow_private: bool,
    appended: Callable[[Callable[[], None]], None] | None = None,
) -> WebhookAdapters:
    from chat4all.adapters.sql.webhooks import SqlWebhookStore
    from chat4all.adapters.webhook_http import AiohttpWebhookTransport, StandardWebhookSigner, SystemResolver

    transport = AiohttpWebhookTransport(public_only=not allow_private) if sending else None
    return WebhookAdapters(
        SqlWebhookStore(engine),
        SystemResolver(),
        StandardWebhookSigner(),
        transport,
        appended,
        on_stop=[transport.close] if transport is not None else [],
    )


def add_webhooks(hub: Hub, adapters: WebhookAdapters) -> None:
    configured = hub.settings.webhooks
    policy = WebhookPolicy(allow_private=configured.allow_private)
    clock, ids = hub.adapters.clock, hub.adapters.ids
    hub.webhooks = ManageWebhooks(adapters.store, adapters.signer, adapters.resolver, clock, ids, policy)
    hub.adapters.on_start.extend(adapters.on_start)
    hub.adapters.on_stop.extend(adapters.on_stop)
    if adapters.transport is None:
        return
    sender = SendWebhooks(
        adapters.store,
        adapters.transport,
        adapters.signer,
        adapters.resolver,
        clock,
        policy,
        per_endpoint=configured.concurrency_per_endpoint,
        max_in_flight=configured.max_in_flight,
    )
    feed = FeedWebhooks(adapters.store, ids, clock, on_fed=sender.poke)
    if adapters.appended is not None:
        adapters.appended(feed.poke)
    purge = PurgeWebhookDeliveries(adapters.store, clock, hub.settings.events.retention)
    hub.background.add("webhook-feed", lambda: feed.run(FEED_POLL, FEED_SPACING))
    hub.background.add("webhook-send", lambda: sender.run(SEND_POLL))
    hub.background.add("webhook-purge", lambda: every(3600.0, purge.execute, "webhook-purge"))
