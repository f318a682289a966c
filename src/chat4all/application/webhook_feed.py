"""Turning users' events into webhook deliveries, in the background of the embedded process or
of each worker (never in a request); `webhook_sender` sends them.

Feeding: each webhook has a cursor in its owner's event log. `FeedWebhooks` finds the webhooks
whose owner has events past their cursor, reads those events from the log the live transports
read (so the same events and seqs), and stores a delivery for each one of a chosen
type while moving the cursor, in one transaction where a cursor only moves if it is still where
it was read: two processes feeding the same webhook store its deliveries once. The writers of
the log are untouched: no cost on the message path, and a webhook made or enabled later picks
up from its cursor.

When: `FeedWebhooks.run` feeds a round when poked (the composition root pokes it whenever events
are appended to users' logs: the in-process notifier, or PostgreSQL's LISTEN in a worker), at
most one round per `spacing` so that a burst of appends makes one round, and every `poll`
seconds without a poke. A poke is only a hint: one that is lost (a LISTEN connection down)
delays a delivery until the poll, never loses it, since the cursors, not the pokes, say what is
owed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import attrs

from chat4all.application.ports import Clock, IdGenerator
from chat4all.application.ports.webhooks import CursorMove, EventRange, WebhookStore
from chat4all.domain.events import UserEvent, iso
from chat4all.domain.webhooks import DeliveryState, WebhookDelivery

FEED_BATCH = 500
BEHIND_LIMIT = 100  # webhooks fed per round
log = logging.getLogger(__name__)


def delivery_body(event: UserEvent) -> str:
    """The Standard Webhooks payload shape, plus the event's seq in its owner's log."""
    envelope = {"type": event.type.value, "timestamp": iso(event.at), "seq": event.seq, "data": dict(event.data)}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True)


@attrs.define
class FeedWebhooks:
    """One round: a read of the webhooks that are behind, a read of their events, and one
    transaction storing their deliveries and moving their cursors. A user's seqs have no gaps, so
    `(cursor, cursor + FEED_BATCH]` is a webhook's next page (a prefix dropped by retention is
    skipped: the cursor moves past it)."""

    store: WebhookStore
    ids: IdGenerator
    clock: Clock
    on_fed: Callable[[], None] = lambda: None
    more: bool = attrs.field(default=False, init=False)  # the last round left webhooks behind
    _wake: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)

    def poke(self) -> None:
        """Events were appended to someone's log: feed now rather than at the next poll."""
        self._wake.set()

    async def run(self, poll: float, spacing: float) -> None:
        """Feeds until cancelled: when poked (at most one round per `spacing` seconds), when the
        last round left more behind, and every `poll` seconds in any case."""
        loop = asyncio.get_running_loop()
        started = loop.time() - spacing
        while True:
            await asyncio.sleep(max(0.0, started + spacing - loop.time()))
            self._wake.clear()  # the round reads what was appended before it: earlier pokes are answered
            started = loop.time()
            try:
                await self.execute()
            except Exception as error:  # the database away: the cursors keep what is owed
                log.warning("could not feed webhook deliveries (%s)", error)
                self.more = False
            if not self.more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)

    async def execute(self) -> int:
        """Stores the deliveries of the events past each webhook's cursor; returns how many."""
        behind = await self.store.behind(limit=BEHIND_LIMIT)
        self.more = len(behind) == BEHIND_LIMIT or any(last > webhook.cursor + FEED_BATCH for webhook, last in behind)
        if not behind:
            return 0
        ranges = [
            EventRange(webhook.owner_id, webhook.cursor, min(last, webhook.cursor + FEED_BATCH))
            for webhook, last in behind
        ]
        now = self.clock.now()
        moves = [
            CursorMove(
                webhook.id,
                webhook.cursor,
                span.up_to,
                [self._delivery(webhook.id, event, now) for event in events if webhook.wants(event.type)],
            )
            for (webhook, _), span, events in zip(behind, ranges, await self.store.events_in(ranges), strict=True)
        ]
        await self.store.advance(moves)
        fed = sum(len(move.deliveries) for move in moves)
        if fed:
            self.on_fed()
        return fed

    def _delivery(self, webhook_id: UUID, event: UserEvent, now: datetime) -> WebhookDelivery:
        return WebhookDelivery(
            id=self.ids.new_id(),
            webhook_id=webhook_id,
            seq=event.seq,
            event_type=event.type.value,
            body=delivery_body(event),
            state=DeliveryState.PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )


@attrs.define
class PurgeWebhookDeliveries:
    """Drops finished deliveries (and their attempts) older than the event retention."""

    store: WebhookStore
    clock: Clock
    retention: timedelta = timedelta(days=7)

    async def execute(self) -> int:
        total = 0
        while (dropped := await self.store.purge_before(self.clock.now() - self.retention, 5_000)) > 0:
            total += dropped
        return total
