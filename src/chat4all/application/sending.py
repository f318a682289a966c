"""Handing a batch of messages to the channels' connectors, with retries, until each has an outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

import attrs

from chat4all.application.ports import ChannelConnector, DeliveryMetrics, FileStorage
from chat4all.domain.batch_outcomes import ChannelOutcome
from chat4all.domain.errors import PermanentDeliveryFailure
from chat4all.domain.messages import FilePayload, Message

log = logging.getLogger(__name__)


@attrs.frozen
class RetryPolicy:
    attempts: int = 5
    first_delay_seconds: float = 0.05
    multiplier: float = 2.0

    def delay_before(self, attempt: int) -> float:
        return self.first_delay_seconds * self.multiplier ** (attempt - 2)


@attrs.frozen
class Ended:
    failure: str | None  # None: delivered
    attempts: int


@attrs.define
class Send:
    """One message on one channel, while its delivery is being attempted."""

    message: Message
    channel: str
    pending: list[UUID]  # recipients the connector has not reached yet
    ended: Ended | None = None  # None: still to be attempted, or deferred to another deliverer
    last_error: str = ""
    reached: list[UUID] = attrs.Factory(list)  # recipients the connector has reached

    def outcome(self) -> ChannelOutcome:
        if self.ended is None:
            return ChannelOutcome(self.message.id, self.channel, deferred=True)
        return ChannelOutcome(
            self.message.id, self.channel, self.ended.failure, reached=tuple(self.reached), unreached=tuple(self.pending)
        )


@attrs.frozen
class ConnectorAttempts:
    """Attempts sends on their channels' connectors. Channels are attempted concurrently, each
    with its own retries (one connector call per attempt), so a provider that is failing holds
    up only its own channel's sends, not those of the others in the batch."""

    connectors: Mapping[str, ChannelConnector]
    storage: FileStorage
    sleep: Callable[[float], Awaitable[None]]
    retry: RetryPolicy
    metrics: DeliveryMetrics

    async def run(self, sends: list[Send], *, attempts: int, give_up: bool) -> None:
        """Up to `attempts` attempts per send; then, with `give_up`, a send still failing
        transiently fails for good, and without it, it is left without an outcome."""
        by_channel: dict[str, list[Send]] = {}
        for send in sends:
            if send.channel in self.connectors:
                by_channel.setdefault(send.channel, []).append(send)
            else:
                send.ended = Ended(f"no connector for channel {send.channel!r}", 0)
        await asyncio.gather(*(self._channel(channel, group, attempts) for channel, group in by_channel.items()))
        if give_up:
            for send in sends:
                if send.ended is None:
                    send.ended = Ended(f"gave up after {attempts} attempts: {send.last_error}", attempts)

    async def _channel(self, channel: str, sends: list[Send], attempts: int) -> None:
        for attempt in range(1, attempts + 1):
            active = [send for send in sends if send.ended is None]
            if not active:
                return
            if attempt > 1:
                for _ in active:
                    self.metrics.delivery_retried(channel)
                await self.sleep(self.retry.delay_before(attempt))
            await self._attempt(channel, active, attempt)

    async def _attempt(self, channel: str, active: list[Send], attempt: int) -> None:
        group = []
        for send in active:
            if await self._file_missing(send.message):
                send.ended = Ended("file bytes are missing from storage", attempt)
            else:
                group.append(send)
        if not group:
            return
        results = await self.connectors[channel].deliver_many([(send.message, send.pending) for send in group])
        for send, result in zip(group, results, strict=True):
            send.reached += send.pending[: result.reached]
            del send.pending[: result.reached]
            if result.failure is None:
                send.ended = Ended(None, attempt)
            elif isinstance(result.failure, PermanentDeliveryFailure):
                send.ended = Ended(result.failure.detail, attempt)
            else:
                send.last_error = result.failure.detail
                log.info(
                    "delivery of %s on %s failed (attempt %d): %s", send.message.id, channel, attempt, send.last_error
                )

    async def _file_missing(self, message: Message) -> bool:
        return isinstance(message.payload, FilePayload) and not await self.storage.file_exists(message.payload.file_id)
