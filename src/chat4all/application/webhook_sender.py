"""Sending webhook deliveries, in the background of the embedded process or of each worker.

`SendWebhooks` claims due deliveries in one statement for every webhook with room, at most
`per_endpoint` of each, each claim a lease (`LEASE`) that keeps other processes off it; an
attempt whose outcome is never recorded (the process died) is claimed again when the lease
ends. Each webhook has `per_endpoint` slots in this process, `max_in_flight` in all: a slow or
hanging endpoint fills only its own (each attempt ends after `ATTEMPT_TIMEOUT`), so the others'
deliveries go on. What a claim brings beyond a webhook's free slots waits in its own queue (at
most `per_endpoint`, so at most one timeout, well inside the lease). The destination is checked
again before every attempt: what a host name resolves to may have changed since it was made.
Outcomes are written together, in one transaction per batch, while the next attempts go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import attrs

from chat4all.application.ports import Clock
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
from chat4all.domain.webhooks import ATTEMPT_TIMEOUT, DeliveryAttempt, after_failure, succeeded

LEASE = timedelta(seconds=60)  # past two attempts' timeouts, their DNS lookups and their writes
log = logging.getLogger(__name__)


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
    _queued: dict[UUID, deque[ClaimedDelivery]] = attrs.field(factory=dict, init=False)
    _tasks: dict[asyncio.Task[None], ClaimedDelivery] = attrs.field(factory=dict, init=False)
    _outcomes: list[AttemptOutcome] = attrs.field(factory=list, init=False)
    _writer: asyncio.Task[None] | None = attrs.field(default=None, init=False)
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
            await self._stop()

    async def _stop(self) -> None:
        """Ends the attempts in flight and hands their deliveries, and those queued, back at once
        (rather than when their leases end), after writing the outcomes already known."""
        unsent = [claim.delivery.id for claim in self._tasks.values()]
        unsent += [claim.delivery.id for queue in self._queued.values() for claim in queue]
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()
        if unsent:
            try:
                await self.store.release(unsent)
            except Exception as error:  # they come back when their leases end
                log.warning("could not hand back %d webhook deliveries (%s)", len(unsent), error)

    async def execute(self) -> int:
        """Claims what is due for the webhooks with room and starts sending it; returns how many."""
        room = self.max_in_flight - len(self._tasks) - sum(len(queue) for queue in self._queued.values())
        if room <= 0:
            return 0
        busy = [webhook for webhook in self._in_flight if self._in_flight[webhook] >= self.per_endpoint]
        busy += [webhook for webhook, queue in self._queued.items() if queue]
        now = self.clock.now()
        claimed = await self.store.claim(now, now + LEASE, busy, self.per_endpoint, room)
        for claim in claimed:
            self._queued.setdefault(claim.delivery.webhook_id, deque()).append(claim)
        for webhook_id in {claim.delivery.webhook_id for claim in claimed}:
            self._start_queued(webhook_id)
        return len(claimed)

    def _start_queued(self, webhook_id: UUID) -> None:
        queue = self._queued.get(webhook_id)
        while queue and self._in_flight.get(webhook_id, 0) < self.per_endpoint:
            self._start(queue.popleft())
        if not queue:
            self._queued.pop(webhook_id, None)

    def _start(self, claim: ClaimedDelivery) -> None:
        webhook_id = claim.delivery.webhook_id
        self._in_flight[webhook_id] = self._in_flight.get(webhook_id, 0) + 1
        task = asyncio.create_task(self.attempt(claim))
        self._tasks[task] = claim

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.pop(finished, None)
            was_full = self._in_flight.get(webhook_id, 0) >= self.per_endpoint
            left = self._in_flight.pop(webhook_id, 1) - 1
            if left:
                self._in_flight[webhook_id] = left
            self._start_queued(webhook_id)
            if was_full and webhook_id not in self._queued:  # skipped by the last claims: it may have more due
                self.poke()

        task.add_done_callback(done)

    async def attempt(self, claim: ClaimedDelivery) -> None:
        started = self.clock.now()
        answer = await self._post(claim)
        attempt = DeliveryAttempt(started, answer.status_code, answer.latency_ms, answer.error)
        self._outcomes.append(self._outcome(claim, attempt))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self.flush())

    async def flush(self) -> None:
        """Writes the outcomes gathered so far, and those that come meanwhile, a batch per transaction."""
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await self.store.record(batch, self.clock.now())
            except Exception as error:  # their leases end and they are sent again (same webhook-id)
                log.warning("could not record %d webhook attempts (%s)", len(batch), error)

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
