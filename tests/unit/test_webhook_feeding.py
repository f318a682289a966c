"""The webhook feeder's loop on in-memory adapters: a poke (events appended) feeds at once rather
than at the poll, a burst of pokes makes few rounds, the poll still feeds what no poke announced,
a backlog bigger than a round goes on without waiting, and a failing round does not end it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

from chat4all.application.webhook_feed import FEED_BATCH, FeedWebhooks
from chat4all.domain.events import EventType, UserEvent
from chat4all.domain.webhooks import Webhook
from tests.fakes import ManualClock, SequentialIds
from tests.fakes.webhooks import InMemoryWebhookStore

NEVER = 3600.0  # a poll that never comes within a test
SOON = 2.0  # seconds: far above a poked round on a loaded machine, far below NEVER


def store_with_webhook() -> tuple[InMemoryWebhookStore, Webhook]:
    store, owner = InMemoryWebhookStore(), uuid4()
    webhook = Webhook(
        uuid4(), owner, "https://hooks.example.com/x", frozenset({EventType.MESSAGE_CREATED}), "", "s", ManualClock().now(), 0
    )
    store.webhooks[webhook.id] = webhook
    store.logs[owner] = []
    return store, webhook


def append(store: InMemoryWebhookStore, webhook: Webhook, count: int = 1) -> None:
    log = store.logs[webhook.owner_id]
    for _ in range(count):
        log.append(UserEvent(len(log) + 1, EventType.MESSAGE_CREATED, ManualClock().now(), {}))


async def fed(store: InMemoryWebhookStore, count: int, within: float = SOON) -> None:
    deadline = time.monotonic() + within
    while len(store.fed) < count:
        assert time.monotonic() < deadline, f"{len(store.fed)} of {count} deliveries fed"
        await asyncio.sleep(0.001)


@asynccontextmanager
async def running(feed: FeedWebhooks, poll: float, spacing: float = 0.0) -> AsyncIterator[None]:
    task = asyncio.create_task(feed.run(poll, spacing))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_poke_feeds_at_once_without_waiting_for_the_poll() -> None:
    store, webhook = store_with_webhook()
    feed = FeedWebhooks(store, SequentialIds(), ManualClock())
    async with running(feed, poll=NEVER):
        await asyncio.sleep(0.01)
        append(store, webhook)
        feed.poke()
        await fed(store, 1)
        append(store, webhook)
        feed.poke()
        await fed(store, 2)
    assert [each.seq for each in store.fed] == [1, 2]


async def test_a_burst_of_pokes_makes_rounds_no_closer_than_the_spacing() -> None:
    store, webhook = store_with_webhook()
    feed = FeedWebhooks(store, SequentialIds(), ManualClock())
    async with running(feed, poll=NEVER, spacing=0.2):
        started = time.monotonic()
        for _ in range(50):
            append(store, webhook)
            feed.poke()
            await asyncio.sleep(0.004)
        await fed(store, 50)
        elapsed = time.monotonic() - started
    # One round to start with, then at most one per 0.2 s: not one per poke.
    assert store.rounds <= 2 + elapsed / 0.2


async def test_the_poll_feeds_what_no_poke_announced() -> None:
    store, webhook = store_with_webhook()
    feed = FeedWebhooks(store, SequentialIds(), ManualClock())
    async with running(feed, poll=0.05):
        append(store, webhook)  # and no poke: a lost notification
        await fed(store, 1)


async def test_a_backlog_longer_than_a_round_is_fed_without_waiting_for_pokes() -> None:
    store, webhook = store_with_webhook()
    append(store, webhook, 2 * FEED_BATCH + 1)
    feed = FeedWebhooks(store, SequentialIds(), ManualClock())
    async with running(feed, poll=NEVER):
        await fed(store, 2 * FEED_BATCH + 1)
    assert store.webhooks[webhook.id].cursor == 2 * FEED_BATCH + 1


async def test_a_failing_round_leaves_the_feeder_running() -> None:
    store, webhook = store_with_webhook()
    feed = FeedWebhooks(store, SequentialIds(), ManualClock())
    working = store.behind
    failures = 0

    async def away(limit: int):
        nonlocal failures
        if failures < 2:
            failures += 1
            raise ConnectionError("database away")
        return await working(limit)

    store.behind = away  # type: ignore[method-assign]
    async with running(feed, poll=0.01):
        append(store, webhook)
        await fed(store, 1)
    assert failures == 2
