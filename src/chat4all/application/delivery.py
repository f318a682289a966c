"""Routing accepted messages to channels and delivering them through connectors.

Both handlers run under at-least-once delivery of their events, so both are idempotent:
a redelivered event finds the work already recorded and does nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from uuid import UUID

import attrs

from chat4all.application.ports import (
    ChannelConnector,
    Clock,
    DeliveryMetrics,
    EventPublisher,
    FileStorage,
    NoMetrics,
    UnitOfWorkFactory,
)
from chat4all.application.topics import DEAD_LETTERS, MESSAGE_PROCESSING, channel_topic
from chat4all.domain.errors import PermanentDeliveryFailure, TransientDeliveryFailure
from chat4all.domain.messages import FilePayload, Message

log = logging.getLogger(__name__)


@attrs.define
class RouteMessage:
    uow: UnitOfWorkFactory
    clock: Clock
    publisher: EventPublisher
    metrics: DeliveryMetrics = attrs.field(factory=NoMetrics)

    async def execute(self, message_id: UUID) -> None:
        async with self.uow() as uow:
            message = await uow.messages.get(message_id, for_update=True)
            if message is None:
                log.warning("routing request for unknown message %s ignored", message_id)
                return
            if message.mark_routed(self.clock.now()):
                await uow.messages.update(message)
                await uow.commit()
                self.metrics.message_routed()
        # Re-publishing pending channels on a redelivered request is safe: delivery is idempotent.
        for channel in message.pending_channels():
            await self.publisher.publish(
                channel_topic(channel), str(message.conversation_id), {"message_id": str(message.id), "channel": channel}
            )


@attrs.frozen
class RetryPolicy:
    attempts: int = 5
    first_delay_seconds: float = 0.05
    multiplier: float = 2.0

    def delay_before(self, attempt: int) -> float:
        return self.first_delay_seconds * self.multiplier ** (attempt - 2)


@attrs.frozen
class _Outcome:
    failure: str | None
    attempts: int


@attrs.define
class DeliverMessage:
    """Hands one message to one channel's connector for each recipient, then records the outcome.

    Transient connector failures are retried with exponential backoff; when the retry budget
    is spent, or on a permanent failure such as a file missing from storage, the channel fails
    and the delivery is published to the dead-letter topic with its reason (at least once).
    """

    uow: UnitOfWorkFactory
    clock: Clock
    connectors: Mapping[str, ChannelConnector]
    storage: FileStorage
    sleep: Callable[[float], Awaitable[None]]
    retry: RetryPolicy = RetryPolicy()
    dead_letters: EventPublisher | None = None
    metrics: DeliveryMetrics = attrs.field(factory=NoMetrics)

    async def execute(self, message_id: UUID, channel: str) -> None:
        async with self.uow() as uow:
            message = await uow.messages.get(message_id)
            conversation = await uow.conversations.get(message.conversation_id) if message else None
        if message is None or conversation is None or channel not in message.pending_channels():
            return
        outcome = await self._attempt(message, conversation.recipients_of(message.sender_id, message.recipient_id), channel)
        if outcome.failure is not None:
            # Published before the failure is recorded: if publishing fails, the event is retried
            # and publishes again, instead of finding the channel ended and the letter lost.
            await self._dead_letter(message, channel, outcome)
        async with self.uow() as uow:
            current = await uow.messages.get(message_id, for_update=True)
            if current is None:
                return
            recorded = current.record_delivery(
                channel, delivered=outcome.failure is None, now=self.clock.now(), detail=outcome.failure
            )
            if recorded:
                await uow.messages.update(current)
                await uow.commit()
        if recorded:
            await self._report(current, channel, outcome)

    async def _report(self, message: Message, channel: str, outcome: _Outcome) -> None:
        self.metrics.channel_finished(channel, delivered=outcome.failure is None)
        if message.status.is_terminal:
            latency = (self.clock.now() - message.created_at).total_seconds()
            self.metrics.message_finished(message.status.value, latency)

    async def _dead_letter(self, message: Message, channel: str, outcome: _Outcome) -> None:
        if self.dead_letters is None:
            return
        await self.dead_letters.publish(
            DEAD_LETTERS,
            str(message.conversation_id),
            {"message_id": str(message.id), "channel": channel, "reason": outcome.failure, "attempts": outcome.attempts},
        )
        self.metrics.dead_lettered(channel)

    async def _attempt(self, message: Message, recipients: tuple[UUID, ...], channel: str) -> _Outcome:
        connector = self.connectors.get(channel)
        if connector is None:
            return _Outcome(f"no connector for channel {channel!r}", 0)
        pending = list(recipients)
        last_error = ""
        for attempt in range(1, self.retry.attempts + 1):
            if attempt > 1:
                self.metrics.delivery_retried(channel)
                await self.sleep(self.retry.delay_before(attempt))
            try:
                await self._check_file(message)
                while pending:
                    await connector.deliver(message, pending[0])
                    pending.pop(0)
                return _Outcome(None, attempt)
            except PermanentDeliveryFailure as error:
                return _Outcome(error.detail, attempt)
            except TransientDeliveryFailure as error:
                last_error = error.detail
                log.info("delivery of %s on %s failed (attempt %d): %s", message.id, channel, attempt, error.detail)
        return _Outcome(f"gave up after {self.retry.attempts} attempts: {last_error}", self.retry.attempts)

    async def _check_file(self, message: Message) -> None:
        if isinstance(message.payload, FilePayload):
            if not await self.storage.file_exists(message.payload.file_id):
                raise PermanentDeliveryFailure("file bytes are missing from storage")


@attrs.define
class RedriveUnfinished:
    """Re-sends the routing event of messages that have sat unfinished for too long.

    Events can be lost between processes (a crash after commit and before publish, a bus
    handler that failed); routing and delivery are idempotent, so sending again is safe.
    A message merely queued behind a backlog would be sent again too, so the threshold is
    long and each sweep bounded: re-drives stay a trickle however large the backlog grows.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    publisher: EventPublisher
    older_than: timedelta = timedelta(seconds=120)
    batch: int = 100

    async def execute(self) -> int:
        async with self.uow() as uow:
            stuck = await uow.messages.unfinished_before(self.clock.now() - self.older_than, self.batch)
        for message in stuck:
            log.warning("re-driving message %s, still %s", message.id, message.status.value)
            await self.publisher.publish(MESSAGE_PROCESSING, str(message.conversation_id), {"message_id": str(message.id)})
        return len(stuck)
