"""Routing accepted messages to their channels.

Runs under at-least-once delivery of its events, so it is idempotent: a redelivered request
finds the message routed, and re-publishing (or delivering) its pending channels is safe because
delivery is idempotent too. Where each channel's delivery happens is the routing policy's call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol
from uuid import UUID

import attrs

from chat4all.application.delivery import DeliverMessage
from chat4all.application.message_batches import UnitOfWorkMessageBatches
from chat4all.application.ports import (
    BatchWrite,
    Clock,
    DeliveryMetrics,
    EventPublisher,
    MessageBatches,
    NoMetrics,
    UnitOfWorkFactory,
)
from chat4all.application.work import DeliveryRequested, RouteRequested, encode
from chat4all.domain.batch_outcomes import mark_routed
from chat4all.domain.messages import Message, MessageStatus

log = logging.getLogger(__name__)


class RoutingPolicy(Protocol):
    """Which pending channels routing delivers itself, and with which deliverer (None: none)."""

    @property
    def deliver(self) -> DeliverMessage | None: ...

    def delivers_here(self, channel: str) -> bool: ...


@attrs.frozen
class PublishEveryChannel:
    """Every pending channel goes through its delivery stream, to that channel's deliverers: for
    deployments that run a channel's connector on workers of its own."""

    deliver: None = None

    def delivers_here(self, channel: str) -> bool:
        return False


@attrs.frozen
class DeliverOnRoute:
    """Channels this process has a connector for are delivered right after routing, in the same
    batch, with the messages routing has just read; only the other channels go through their
    delivery streams. That saves each message a second pass through the event bus (a publish, a
    fetch, a batch of its own) and a read of the messages. One attempt here: a provider that fails
    transiently is retried by that channel's own deliverers, so its back-off holds up neither
    routing nor the other channels."""

    deliver: DeliverMessage

    def delivers_here(self, channel: str) -> bool:
        return channel in self.deliver.connectors


@attrs.define
class RouteMessage:
    uow: UnitOfWorkFactory
    clock: Clock
    publisher: EventPublisher
    metrics: DeliveryMetrics = attrs.field(factory=NoMetrics)
    # None: `UnitOfWorkMessageBatches` over `uow`. Resolved into `_batches` rather than in place, so
    # `attrs.evolve(route, uow=...)` builds batches over the new unit of work instead of the old one
    # (the policy's deliverer keeps its own: evolve it too).
    message_batches: MessageBatches | None = None
    policy: RoutingPolicy = PublishEveryChannel()
    _batches: MessageBatches = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._batches = self.message_batches or UnitOfWorkMessageBatches(self.uow)

    @property
    def deliver(self) -> DeliverMessage | None:
        """The deliverer routing hands this process's own channels to, if the policy delivers on route."""
        return self.policy.deliver

    async def handle(self, events: Sequence[RouteRequested]) -> None:
        await self.execute_batch([event.message_id for event in events])

    async def execute(self, message_id: UUID) -> None:
        await self.execute_batch([message_id])

    async def execute_batch(self, message_ids: Sequence[UUID]) -> None:
        """Routes many messages, in the order asked (which keeps each conversation's order).

        Publishing every channel: marks them routed in one transaction, then publishes their
        delivery requests at once. Delivering on route: reads them, and a message with a channel
        delivered here is marked routed in delivery's one write, together with its outcomes; only
        the others are marked routed before their requests are published.
        """
        wanted = list(dict.fromkeys(message_ids))
        if not wanted:
            return
        deliver = self.policy.deliver
        found = await (self._mark_routed(wanted) if deliver is None else self._batches.read(wanted))
        for message_id in wanted:
            if message_id not in found:
                log.warning("routing request for unknown message %s ignored", message_id)
        messages = [found[message_id] for message_id in wanted if message_id in found]
        here, elsewhere = self._split(messages)
        if deliver is not None:
            delivered_here = {message_id for message_id, _ in here}
            unrouted = [
                message.id
                for message in messages
                if message.id not in delivered_here and message.status is MessageStatus.ACCEPTED
            ]
            if unrouted:
                await self._mark_routed(unrouted)
        await self._request_delivery(elsewhere)
        if here:
            assert deliver is not None
            await self._request_delivery(await deliver.deliver_routed(here, found))

    def _split(self, messages: list[Message]) -> tuple[list[tuple[UUID, str]], list[tuple[Message, str]]]:
        """The pending (message, channel) pairs delivered here, and those left to the channels' deliverers."""
        here: list[tuple[UUID, str]] = []
        elsewhere: list[tuple[Message, str]] = []
        for message in messages:
            for channel in message.pending_channels():
                if self.policy.delivers_here(channel):
                    here.append((message.id, channel))
                else:
                    elsewhere.append((message, channel))
        return here, elsewhere

    async def _mark_routed(self, wanted: list[UUID]) -> dict[UUID, Message]:
        routing = _Routing(self.clock, wanted)
        found = await self._batches.change(wanted, routing)
        for _ in routing.routed:
            self.metrics.message_routed()
        return found

    async def _request_delivery(self, pending: Sequence[tuple[Message, str]]) -> None:
        if pending:
            await self.publisher.publish_batch(
                [
                    encode(DeliveryRequested(message.id, channel), message.conversation_id)
                    for message, channel in pending
                ]
            )


@attrs.define
class _Routing:
    """What `MessageBatches.change` applies to mark messages routed; keeps which ones it routed."""

    clock: Clock
    wanted: list[UUID]
    routed: list[Message] = attrs.field(factory=list)

    def __call__(self, found: Mapping[UUID, Message]) -> BatchWrite:
        self.routed = mark_routed(found, self.wanted, self.clock.now())
        return BatchWrite(self.routed)
