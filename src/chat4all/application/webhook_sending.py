"""Turning users' events into webhook deliveries, and sending them, in the background of the
embedded process or of each worker (never in a request).

Feeding: each webhook has a cursor in its owner's event log. `FeedWebhooks` finds the webhooks
whose owner has events past their cursor, reads those events through the same reader as the
live transports (so the same events and seqs), and stores a delivery for each one of a chosen
type while moving the cursor, in one transaction that only succeeds if the cursor is still where
it was read: two processes feeding the same webhook store its deliveries once. The writers of
the log are untouched: no cost on the message path, and a webhook made or enabled later picks
up from its cursor.

Sending: `SendWebhooks` claims due deliveries per webhook, at most `per_endpoint` in flight per
webhook in this process and `max_in_flight` in all, each claim a lease (`LEASE`) that keeps
other processes off it; an attempt that never records its outcome (the process died) is claimed
again when the lease ends. A slow or hanging endpoint fills only its own slots (each attempt
ends after `ATTEMPT_TIMEOUT`), so the others' deliveries go on. The destination is checked
again before every attempt: what a host name resolves to may have changed since it was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import attrs

from chat4all.application.ports import Clock, IdGenerator, UserEventReader
from chat4all.application.ports.webhooks import (
    AddressResolver,
    AttemptOutcome,
    ClaimedDelivery,
    HttpAnswer,
    WebhookSigner,
    WebhookStore,
    WebhookTransport,
)
from chat4all.application.webhooks import WebhookPolicy, check_destination
from chat4all.domain.errors import InvalidInput
from chat4all.domain.events import UserEvent, iso
from chat4all.domain.webhooks import (
    ATTEMPT_TIMEOUT,
    DeliveryAttempt,
    DeliveryState,
    Webhook,
    WebhookDelivery,
    after_failure,
    succeeded,
)

LEASE = timedelta(seconds=60)  # well past an attempt's timeout, its DNS lookup and its write
FEED_BATCH = 500
log = logging.getLogger(__name__)


def delivery_body(event: UserEvent) -> str:
    """The Standard Webhooks payload shape, plus the event's seq in its owner's log."""
    envelope = {"type": event.type.value, "timestamp": iso(event.at), "seq": event.seq, "data": dict(event.data)}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True)


@attrs.define
class FeedWebhooks:
    store: WebhookStore
    events: UserEventReader
    ids: IdGenerator
    clock: Clock
    on_fed: Callable[[], None] = lambda: None

    async def execute(self) -> int:
        """Stores the deliveries of the events past each webhook's cursor; returns how many."""
        fed = 0
        for webhook in await self.store.behind(limit=100):
            fed += await self._feed(webhook)
        if fed:
            self.on_fed()
        return fed

    async def _feed(self, webhook: Webhook) -> int:
        bounds, events = await self.events.read_after(webhook.owner_id, webhook.cursor, FEED_BATCH)
        to = events[-1].seq if events else bounds.last  # none left: dropped by retention, skip them
        now = self.clock.now()
        deliveries = [self._delivery(webhook.id, event, now) for event in events if webhook.wants(event.type)]
        if not await self.store.advance(webhook.id, webhook.cursor, max(to, webhook.cursor), deliveries):
            return 0
        return len(deliveries)

    def _delivery(self, webhook_id: UUID, event: UserEvent, now) -> WebhookDelivery:  # type: ignore[no-untyped-def]
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
class SendWebhooks:
    store: WebhookStore
    transport: WebhookTransport
    signer: WebhookSigner
    resolver: AddressResolver
    clock: Clock
    policy: WebhookPolicy = WebhookPolicy()
    per_endpoint: int = 8
    max_in_flight: int = 256
    jitter: Callable[[], float] = lambda: random.uniform(-1.0, 1.0)  # noqa: S311 - spreading retries, not a secret
    _in_flight: dict[UUID, int] = attrs.field(factory=dict, init=False)
    _tasks: set[asyncio.Task[None]] = attrs.field(factory=set, init=False)
    _wake: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)

    def poke(self) -> None:
        """New deliveries, or a free slot: claim again without waiting for the poll."""
        self._wake.set()

    async def run(self, poll: float = 0.5) -> None:
        """Claims and sends until cancelled; what is in flight then is claimed again after its lease."""
        try:
            while True:
                try:
                    claimed = await self.execute()
                except Exception as error:  # the database away: keep trying
                    log.warning("could not claim webhook deliveries (%s)", error)
                    claimed = 0
                if not claimed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), poll)
                self._wake.clear()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def execute(self) -> int:
        """Claims what is due for the webhooks with free slots and starts sending it; returns how many."""
        now = self.clock.now()
        full = [webhook for webhook, count in self._in_flight.items() if count >= self.per_endpoint]
        claimed = 0
        for webhook_id in await self.store.due_webhooks(now, full, limit=100):
            free = min(self.per_endpoint - self._in_flight.get(webhook_id, 0), self.max_in_flight - len(self._tasks))
            if free <= 0:
                continue
            for claim in await self.store.claim(webhook_id, now, now + LEASE, free):
                self._start(claim)
                claimed += 1
        return claimed

    def _start(self, claim: ClaimedDelivery) -> None:
        webhook_id = claim.delivery.webhook_id
        self._in_flight[webhook_id] = self._in_flight.get(webhook_id, 0) + 1
        task = asyncio.create_task(self.attempt(claim))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            left = self._in_flight.pop(webhook_id, 1) - 1
            if left:
                self._in_flight[webhook_id] = left
            self.poke()

        task.add_done_callback(done)

    async def attempt(self, claim: ClaimedDelivery) -> None:
        started = self.clock.now()
        answer = await self._post(claim)
        attempt = DeliveryAttempt(started, answer.status_code, answer.latency_ms, answer.error)
        try:
            await self.store.record(self._outcome(claim, attempt), self.clock.now())
        except Exception as error:  # its lease ends and it is sent again (same webhook-id)
            log.warning("could not record webhook delivery %s (%s)", claim.delivery.id, error)

    async def _post(self, claim: ClaimedDelivery) -> HttpAnswer:
        try:
            await check_destination(claim.url, self.policy, self.resolver)
        except InvalidInput as refused:
            return HttpAnswer(None, f"refused: {refused.detail}", 0)
        message_id = str(claim.delivery.id)
        now = self.clock.now()
        body = claim.delivery.body.encode()
        headers = {
            "content-type": "application/json",
            "user-agent": "Chat4All-Webhooks/1",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(claim.secret, message_id, now, body),
        }
        return await self.transport.post(claim.url, body, headers, ATTEMPT_TIMEOUT.total_seconds())

    def _outcome(self, claim: ClaimedDelivery, attempt: DeliveryAttempt) -> AttemptOutcome:
        delivery = claim.delivery
        if succeeded(attempt.status_code):
            return AttemptOutcome(delivery.id, delivery.webhook_id, attempt, True, None)
        error = attempt.error or f"HTTP {attempt.status_code}"
        decision = after_failure(
            failures=delivery.attempts + 1,
            first_attempt_at=delivery.first_attempt_at or attempt.attempted_at,
            failing_since=claim.failing_since or attempt.attempted_at,
            now=attempt.attempted_at,
            jitter=self.jitter(),
            error=error,
        )
        return AttemptOutcome(
            delivery.id, delivery.webhook_id, attempt, False, decision.next_attempt_at, decision.disable_reason
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
