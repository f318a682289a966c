"""Delivering routed messages through the channels' connectors, and recording how it went.

Runs under at-least-once delivery of its events, so it is idempotent: a redelivered event finds
the outcome already recorded and does nothing new (and the connectors send each (channel,
message, recipient) once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from uuid import UUID

import attrs

from chat4all.application.message_batches import UnitOfWorkMessageBatches
from chat4all.application.ports import (
    BatchWrite,
    Cache,
    CacheFactory,
    ChannelConnector,
    Clock,
    DeliveryMetrics,
    EventNotifier,
    EventPublisher,
    FileStorage,
    MessageBatches,
    NoMetrics,
    UnitOfWorkFactory,
)
from chat4all.application.sending import ConnectorAttempts, RetryPolicy, Send
from chat4all.application.work import DeadLettered, DeliveryRequested, encode
from chat4all.domain.batch_outcomes import ChannelOutcome, RecordedBatch, record_outcomes
from chat4all.domain.conversations import Conversation, ConversationType
from chat4all.domain.failover import waiting_recipients
from chat4all.domain.messages import Message

log = logging.getLogger(__name__)

# Private conversations whose members are kept in memory: they cannot be left, so a cached member
# list cannot go stale. A group's members are read for every batch (a member may have left).
CONVERSATION_CACHE_SIZE = 50_000


@attrs.define
class DeliverMessage:
    """Hands messages to a channel's connector for each recipient, then records the outcomes.

    Transient connector failures are retried with exponential backoff; when the retry budget
    is spent, or on a permanent failure such as a file missing from storage, the channel fails
    and the delivery is published as dead-lettered with its reason (at least once).

    A batch is read once (or handed over by routing, see `deliver_routed`), handed to each
    connector in one call per attempt, and its outcomes recorded in one transaction, in the order
    asked: a conversation's outcomes are recorded in order even when one of its messages needed
    retries.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    connectors: Mapping[str, ChannelConnector]
    storage: FileStorage
    sleep: Callable[[float], Awaitable[None]]
    retry: RetryPolicy = RetryPolicy()
    dead_letters: EventPublisher | None = None
    metrics: DeliveryMetrics = attrs.field(factory=NoMetrics)
    # None: `UnitOfWorkMessageBatches` over `uow`. Resolved into `_batches` rather than in place, so
    # `attrs.evolve(deliver, uow=...)` builds batches over the new unit of work instead of the old one.
    message_batches: MessageBatches | None = None
    caches: CacheFactory = attrs.field(kw_only=True)
    # Wakes this process's readers of the senders' event logs once outcomes are recorded (None: nobody waits here).
    notifier: EventNotifier | None = attrs.field(default=None, kw_only=True)
    # Where a failover step's delivery is requested, as any channel's (None: only redriving finds it).
    requests: EventPublisher | None = attrs.field(default=None, kw_only=True)
    _batches: MessageBatches = attrs.field(init=False, repr=False)
    _conversations: Cache[UUID, Conversation] = attrs.field(init=False, repr=False)
    _attempts: ConnectorAttempts = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._batches = self.message_batches or UnitOfWorkMessageBatches(self.uow)
        self._conversations = self.caches(CONVERSATION_CACHE_SIZE)
        self._attempts = ConnectorAttempts(self.connectors, self.storage, self.sleep, self.retry, self.metrics)

    async def handle(self, events: Sequence[DeliveryRequested]) -> None:
        await self.execute_batch([(event.message_id, event.channel) for event in events])

    async def execute(self, message_id: UUID, channel: str) -> None:
        await self.execute_batch([(message_id, channel)])

    async def execute_batch(self, requests: Sequence[tuple[UUID, str]]) -> None:
        """Delivers each (message id, channel) asked for whose channel is still pending, retrying
        transient failures until the retry budget is spent."""
        wanted = list(dict.fromkeys(requests))
        if not wanted:
            return
        messages = await self._batches.read([message_id for message_id, _ in wanted])
        sends = await self._sends(wanted, messages)
        if sends:
            await self._attempts.run(sends, attempts=self.retry.attempts, give_up=True)
            await self._conclude(sends)

    async def deliver_routed(
        self, requests: Sequence[tuple[UUID, str]], messages: Mapping[UUID, Message]
    ) -> list[tuple[Message, str]]:
        """Routing's own deliveries (see `routing.DeliverOnRoute`): one attempt each, on the
        messages routing has just read (`messages` holds every one asked for that exists).

        The sends that fail transiently are not recorded (their messages are recorded as routed)
        but returned, for routing to hand to the channel's own deliverers.
        """
        sends = await self._sends(list(dict.fromkeys(requests)), messages)
        if not sends:
            return []
        await self._attempts.run(sends, attempts=1, give_up=False)
        deferred = await self._conclude(sends)
        return [(send.message, send.channel) for send in deferred]

    async def _conclude(self, sends: list[Send]) -> list[Send]:
        """Dead-letters the failures, records every outcome in one write; returns the sends deferred."""
        failed = [send for send in sends if send.ended is not None and send.ended.failure is not None]
        if failed:
            # Published before the failures are recorded: if publishing fails, the events are
            # retried and publish again, instead of finding the channels ended and the letters lost.
            await self._dead_letter(failed)
        recording = _Recording(self.clock, [send.outcome() for send in sends])
        current = await self._batches.change([send.message.id for send in sends], recording)
        # Counted once committed: a write that fails is redone by the retried batch, and counted then.
        self._count(recording.result, current)
        if recording.result is not None:
            await self._announce(recording.result)
        deferred = [send for send in sends if send.ended is None]
        for send in deferred:
            self.metrics.delivery_retried(send.channel)
        return deferred

    async def _announce(self, recorded: RecordedBatch) -> None:
        """Once recorded: wakes the senders' readers, and requests the failover steps' deliveries
        (after the commit, so that the channel is pending when the request is handled; a request
        lost before it is published leaves the message unfinished, and redriving requests it)."""
        if self.notifier is not None and recorded.events:
            self.notifier.notify({event.user_id for event in recorded.events})
        if self.requests is not None and recorded.failovers:
            await self.requests.publish_batch(
                [
                    encode(DeliveryRequested(message.id, channel), message.conversation_id)
                    for message, channel in recorded.failovers
                ]
            )

    async def _sends(self, wanted: list[tuple[UUID, str]], messages: Mapping[UUID, Message]) -> list[Send]:
        pending = [
            (messages[message_id], channel)
            for message_id, channel in wanted
            if message_id in messages and channel in messages[message_id].pending_channels()
        ]
        conversations = await self._conversations_of(
            list(dict.fromkeys(message.conversation_id for message, _ in pending))
        )
        reached = await self._reached([message.id for message, channel in pending if channel in message.failover])
        sends = []
        for message, channel in pending:
            conversation = conversations.get(message.conversation_id)
            if conversation is None:  # unreachable while conversations are never deleted without their messages
                log.warning("message %s belongs to no conversation; not delivered on %s", message.id, channel)
                continue
            recipients = list(conversation.recipients_of(message.sender_id, message.recipient_id))
            if channel in message.failover:
                recipients = waiting_recipients(recipients, reached.get(message.id, ()))
            sends.append(Send(message, channel, recipients))
        return sends

    async def _reached(self, message_ids: list[UUID]) -> dict[UUID, set[UUID]]:
        """Who already has each of these messages (a delivered receipt): a failover step is for the others."""
        if not message_ids:
            return {}
        async with self.uow() as uow:
            return {
                message_id: {r.recipient_id for r in await uow.receipts.for_message(message_id) if r.delivered_at}
                for message_id in dict.fromkeys(message_ids)
            }

    async def _conversations_of(self, conversation_ids: list[UUID]) -> dict[UUID, Conversation | None]:
        """Members are read once per private conversation and process, once per batch for a group
        (see CONVERSATION_CACHE_SIZE), and only for messages with something left to deliver."""
        now = self.clock.now()
        known = {conversation_id: self._conversations.get(conversation_id, now) for conversation_id in conversation_ids}
        unknown = [conversation_id for conversation_id, conversation in known.items() if conversation is None]
        if unknown:
            async with self.uow() as uow:
                for conversation_id, conversation in (await uow.conversations.get_many(unknown)).items():
                    if conversation.type is ConversationType.PRIVATE:
                        self._conversations.put(conversation_id, conversation)
                    known[conversation_id] = conversation
        return known

    def _count(self, recorded: RecordedBatch | None, current: Mapping[UUID, Message]) -> None:
        if recorded is None:
            return
        for _ in recorded.routed:
            self.metrics.message_routed()
        for outcome, terminal in recorded.ended:
            self.metrics.channel_finished(outcome.channel, delivered=outcome.failure is None)
            if terminal:
                message = current[outcome.message_id]
                latency = (self.clock.now() - message.created_at).total_seconds()
                self.metrics.message_finished(message.status.value, latency)

    async def _dead_letter(self, failed: list[Send]) -> None:
        if self.dead_letters is None:
            return
        letters = [
            encode(
                DeadLettered(send.message.id, send.channel, send.ended.failure, send.ended.attempts),
                send.message.conversation_id,
            )
            for send in failed
            if send.ended is not None and send.ended.failure is not None
        ]
        await self.dead_letters.publish_batch(letters)
        for send in failed:
            self.metrics.dead_lettered(send.channel)


@attrs.define
class _Recording:
    """What `MessageBatches.change` applies: the batch's outcomes on the messages as locked (with
    the receipts they deliver and the senders' `message.status`), kept for counting."""

    clock: Clock
    outcomes: list[ChannelOutcome]  # in the order asked
    result: RecordedBatch | None = None

    def __call__(self, current: dict[UUID, Message]) -> BatchWrite:
        now = self.clock.now()
        self.result = record_outcomes(current, self.outcomes, now)
        result = self.result
        return BatchWrite(result.changed, result.delivered_receipts, result.events, now, result.attempts)
