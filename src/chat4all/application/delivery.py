"""Routing accepted messages to channels and delivering them through connectors.

Both handlers run under at-least-once delivery of their events, so both are idempotent:
a redelivered event finds the work already recorded and does nothing new. With
`RouteMessage.deliver`, routing delivers on this process's connectors itself, and
`<channel>_outgoing` carries only the other channels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from uuid import UUID

import attrs

from chat4all.application.ports import (
    Cache,
    CacheFactory,
    ChannelConnector,
    Clock,
    DeliveryMetrics,
    EventPublisher,
    FileStorage,
    MessageBatches,
    NoMetrics,
    OutboxEvent,
    UnitOfWorkFactory,
)
from chat4all.application.topics import DEAD_LETTERS, channel_topic
from chat4all.domain.conversations import Conversation, ConversationType
from chat4all.domain.errors import PermanentDeliveryFailure
from chat4all.domain.messages import FilePayload, Message, MessageStatus

log = logging.getLogger(__name__)


@attrs.define
class UnitOfWorkMessageBatches:
    """The `MessageBatches` of any unit of work: `get_many`, `update_many` and `commit`.
    (An adapter may do the same in fewer round trips; the PostgreSQL one does a change in two.)"""

    uow: UnitOfWorkFactory

    async def read(self, message_ids: Sequence[UUID]) -> dict[UUID, Message]:
        if not message_ids:
            return {}
        async with self.uow() as uow:
            return await uow.messages.get_many(message_ids)

    async def change(
        self, message_ids: Sequence[UUID], apply: Callable[[dict[UUID, Message]], Sequence[Message]]
    ) -> dict[UUID, Message]:
        if not message_ids:
            return {}
        async with self.uow() as uow:
            found = await uow.messages.get_many(message_ids, for_update=True)
            changed = apply(found)
            if changed:
                await uow.messages.update_many(changed)
                await uow.commit()
        return found


@attrs.define
class RouteMessage:
    uow: UnitOfWorkFactory
    clock: Clock
    publisher: EventPublisher
    metrics: DeliveryMetrics = attrs.field(factory=NoMetrics)
    # None: `UnitOfWorkMessageBatches` over `uow`. Resolved into `_batches` rather than in place, so
    # `attrs.evolve(route, uow=...)` builds batches over the new unit of work instead of the old one
    # (`deliver` keeps its own: evolve it too).
    message_batches: MessageBatches | None = None
    # Set: channels this process has a connector for are delivered right after routing, in the same
    # batch, with the messages routing has just read; only the other channels go through their
    # `<channel>_outgoing` topic. That saves each message a second pass through the event bus (a
    # publish, a fetch, a batch of its own) and a read of the messages. None: every channel goes
    # through its topic, for deployments that run a channel's connector on workers of its own.
    deliver: DeliverMessage | None = None
    _batches: MessageBatches = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._batches = self.message_batches or UnitOfWorkMessageBatches(self.uow)

    async def execute(self, message_id: UUID) -> None:
        await self.execute_batch([message_id])

    async def execute_batch(self, message_ids: Sequence[UUID]) -> None:
        """Routes many messages, in the order asked (which keeps each conversation's order).

        Without `deliver`: marks them routed in one transaction, then publishes their channel
        events at once. With it: reads them, and a message with a channel delivered here is marked
        routed in delivery's one write, together with its outcomes; only the others are marked
        routed before their events are published.
        """
        wanted = list(dict.fromkeys(message_ids))
        if not wanted:
            return
        if self.deliver is None:
            found = await self._mark_routed(wanted)
        else:
            found = await self._batches.read(wanted)
        for message_id in wanted:
            if message_id not in found:
                log.warning("routing request for unknown message %s ignored", message_id)
        # Re-publishing (or delivering) pending channels on a redelivered request is safe: delivery
        # is idempotent.
        here: list[tuple[UUID, str]] = []
        events: list[OutboxEvent] = []
        for message in (found[message_id] for message_id in wanted if message_id in found):
            for channel in message.pending_channels():
                if self.deliver is not None and channel in self.deliver.connectors:
                    here.append((message.id, channel))
                else:
                    events.append(_channel_event(message, channel))
        if self.deliver is not None:
            delivered_here = {message_id for message_id, _ in here}
            unrouted = [
                message_id
                for message_id in wanted
                if message_id in found
                and message_id not in delivered_here
                and found[message_id].status is MessageStatus.ACCEPTED
            ]
            if unrouted:
                await self._mark_routed(unrouted)
        if events:
            await self.publisher.publish_batch(events)
        if here:
            assert self.deliver is not None
            # One attempt here; a provider that fails transiently is retried by that channel's own
            # deliverers, so its back-off holds up neither routing nor the other channels.
            retry_later = await self.deliver.execute_batch(here, already_read=found, retry_elsewhere=True)
            if retry_later:
                await self.publisher.publish_batch([_channel_event(message, channel) for message, channel in retry_later])

    async def _mark_routed(self, wanted: list[UUID]) -> dict[UUID, Message]:
        routed: list[Message] = []

        def mark_routed(found: dict[UUID, Message]) -> list[Message]:
            now = self.clock.now()
            routed.extend(found[message_id] for message_id in wanted if message_id in found and found[message_id].mark_routed(now))
            return routed

        found = await self._batches.change(wanted, mark_routed)
        for _ in routed:
            self.metrics.message_routed()
        return found


def _channel_event(message: Message, channel: str) -> OutboxEvent:
    return OutboxEvent(channel_topic(channel), str(message.conversation_id), {"message_id": str(message.id), "channel": channel})


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
class _Send:
    """One message on one channel, while its delivery is being attempted."""

    message: Message
    channel: str
    pending: list[UUID]
    outcome: _Outcome | None = None
    last_error: str = ""


# Private conversations whose members are kept in memory: they cannot be left, so a cached member
# list cannot go stale. A group's members are read for every batch (a member may have left).
CONVERSATION_CACHE_SIZE = 50_000


@attrs.define
class DeliverMessage:
    """Hands messages to a channel's connector for each recipient, then records the outcomes.

    Transient connector failures are retried with exponential backoff; when the retry budget
    is spent, or on a permanent failure such as a file missing from storage, the channel fails
    and the delivery is published to the dead-letter topic with its reason (at least once).

    A batch is read once (or handed over by routing, see `already_read`), handed to each
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
    message_batches: MessageBatches | None = None  # None: `UnitOfWorkMessageBatches` (see RouteMessage)
    caches: CacheFactory = attrs.field(kw_only=True)
    _batches: MessageBatches = attrs.field(init=False, repr=False)
    _conversations: Cache[UUID, Conversation] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._batches = self.message_batches or UnitOfWorkMessageBatches(self.uow)
        self._conversations = self.caches(CONVERSATION_CACHE_SIZE)

    async def execute(self, message_id: UUID, channel: str) -> None:
        await self.execute_batch([(message_id, channel)])

    async def execute_batch(
        self,
        requests: Sequence[tuple[UUID, str]],
        *,
        already_read: Mapping[UUID, Message] | None = None,
        retry_elsewhere: bool = False,
    ) -> list[tuple[Message, str]]:
        """Delivers each (message id, channel) asked for whose channel is still pending.

        `already_read`: the messages as the caller has just read them from the database (routing does),
        instead of reading them again; it must hold every message asked for that exists.

        `retry_elsewhere`: one attempt only. The sends that fail transiently are not recorded
        (their messages are recorded as routed) but returned, for the caller to hand to the
        channel's own deliverers; otherwise nothing is returned.
        """
        wanted = list(dict.fromkeys(requests))
        if not wanted:
            return []
        sends = await self._load(wanted, already_read)
        if not sends:
            return []
        await self._attempt(sends, attempts=1 if retry_elsewhere else self.retry.attempts, give_up=not retry_elsewhere)
        retry_later = [send for send in sends if send.outcome is None]
        failed = [send for send in sends if send.outcome is not None and send.outcome.failure is not None]
        if failed:
            # Published before the failures are recorded: if publishing fails, the events are
            # retried and publish again, instead of finding the channels ended and the letters lost.
            await self._dead_letter(failed)
        recorded: list[tuple[_Send, bool]] = []  # (send, message now terminal)
        routed_here: set[UUID] = set()  # accepted messages this write records as routed (see RouteMessage.deliver)

        def record_outcomes(current: dict[UUID, Message]) -> list[Message]:
            now = self.clock.now()
            accepted = {message_id for message_id, message in current.items() if message.status is MessageStatus.ACCEPTED}
            changed: dict[UUID, Message] = {}
            for send in sends:
                message = current.get(send.message.id)
                if message is None:
                    continue
                if send.outcome is None:  # to be retried elsewhere: routed, the channel left pending
                    if message.mark_routed(now):
                        changed[message.id] = message
                elif message.record_delivery(
                    send.channel, delivered=send.outcome.failure is None, now=now, detail=send.outcome.failure
                ):
                    changed[message.id] = message
                    recorded.append((send, message.status.is_terminal))
            routed_here.update(accepted & changed.keys())  # any change to an accepted message routes it
            return list(changed.values())

        current = await self._batches.change([send.message.id for send in sends], record_outcomes)
        # Counted once committed: a write that fails is redone by the retried batch, and counted then.
        for _ in routed_here:
            self.metrics.message_routed()
        for send, terminal in recorded:
            self._report(send, terminal, current[send.message.id])
        for send in retry_later:
            self.metrics.delivery_retried(send.channel)
        return [(send.message, send.channel) for send in retry_later]

    async def _load(
        self, wanted: list[tuple[UUID, str]], already_read: Mapping[UUID, Message] | None
    ) -> list[_Send]:
        messages = already_read if already_read is not None else await self._batches.read([message_id for message_id, _ in wanted])
        pending = [
            (messages[message_id], channel)
            for message_id, channel in wanted
            if message_id in messages and channel in messages[message_id].pending_channels()
        ]
        # Members are read once per private conversation and process, once per batch for a group
        # (see CONVERSATION_CACHE_SIZE), and only for messages with something left to deliver.
        now = self.clock.now()
        known = {message.conversation_id: self._conversations.get(message.conversation_id, now) for message, _ in pending}
        unknown = [conversation_id for conversation_id, conversation in known.items() if conversation is None]
        if unknown:
            async with self.uow() as uow:
                for conversation_id, conversation in (await uow.conversations.get_many(unknown)).items():
                    if conversation.type is ConversationType.PRIVATE:
                        self._conversations.put(conversation_id, conversation)
                    known[conversation_id] = conversation
        sends = []
        for message, channel in pending:
            conversation = known.get(message.conversation_id)
            if conversation is None:  # unreachable while conversations are never deleted without their messages
                log.warning("message %s belongs to no conversation; not delivered on %s", message.id, channel)
            else:
                sends.append(_Send(message, channel, list(conversation.recipients_of(message.sender_id, message.recipient_id))))
        return sends

    def _report(self, send: _Send, terminal: bool, message: Message) -> None:
        assert send.outcome is not None
        self.metrics.channel_finished(send.channel, delivered=send.outcome.failure is None)
        if terminal:
            latency = (self.clock.now() - message.created_at).total_seconds()
            self.metrics.message_finished(message.status.value, latency)

    async def _dead_letter(self, failed: list[_Send]) -> None:
        if self.dead_letters is None:
            return
        await self.dead_letters.publish_batch(
            [
                OutboxEvent(
                    DEAD_LETTERS,
                    str(send.message.conversation_id),
                    {
                        "message_id": str(send.message.id),
                        "channel": send.channel,
                        "reason": send.outcome.failure,
                        "attempts": send.outcome.attempts,
                    },
                )
                for send in failed
                if send.outcome is not None
            ]
        )
        for send in failed:
            self.metrics.dead_lettered(send.channel)

    async def _attempt(self, sends: list[_Send], *, attempts: int, give_up: bool) -> None:
        """Attempts every send until each has an outcome. Channels are attempted concurrently, each
        with its own retries (one connector call per attempt), so a provider that is failing holds
        up only its own channel's sends, not those of the others in the batch."""
        by_channel: dict[str, list[_Send]] = {}
        for send in sends:
            if send.channel in self.connectors:
                by_channel.setdefault(send.channel, []).append(send)
            else:
                send.outcome = _Outcome(f"no connector for channel {send.channel!r}", 0)
        await asyncio.gather(
            *(self._attempt_channel(channel, group, attempts, give_up) for channel, group in by_channel.items())
        )

    async def _attempt_channel(self, channel: str, sends: list[_Send], attempts: int, give_up: bool) -> None:
        """Up to `attempts` attempts; then, with `give_up`, a send still failing transiently fails
        for good, and without it, it is left without an outcome."""
        for attempt in range(1, attempts + 1):
            active = [send for send in sends if send.outcome is None]
            if not active:
                return
            if attempt > 1:
                for _ in active:
                    self.metrics.delivery_retried(channel)
                await self.sleep(self.retry.delay_before(attempt))
            group = []
            for send in active:
                if await self._file_missing(send.message):
                    send.outcome = _Outcome("file bytes are missing from storage", attempt)
                else:
                    group.append(send)
            if not group:
                continue
            results = await self.connectors[channel].deliver_many([(send.message, send.pending) for send in group])
            for send, result in zip(group, results, strict=True):
                del send.pending[: result.reached]
                if result.failure is None:
                    send.outcome = _Outcome(None, attempt)
                elif isinstance(result.failure, PermanentDeliveryFailure):
                    send.outcome = _Outcome(result.failure.detail, attempt)
                else:
                    send.last_error = result.failure.detail
                    log.info(
                        "delivery of %s on %s failed (attempt %d): %s", send.message.id, channel, attempt, result.failure.detail
                    )
        if not give_up:
            return
        for send in sends:
            if send.outcome is None:
                send.outcome = _Outcome(f"gave up after {attempts} attempts: {send.last_error}", attempts)

    async def _file_missing(self, message: Message) -> bool:
        return isinstance(message.payload, FilePayload) and not await self.storage.file_exists(message.payload.file_id)
