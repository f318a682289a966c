"""What a batch of routing or delivery work changes in its messages, decided without I/O.

Routing and delivery read a batch of messages under row locks, decide here what changes, and
write it back in the same transaction (`MessageBatches.change`). The functions change the messages
they are given (their status machine records the new events) and say which ones changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.domain.event_data import message_status
from chat4all.domain.events import PendingEvent
from chat4all.domain.failover import DeliveryAttempt, attempts_of
from chat4all.domain.messages import Message, MessageStatus


@attrs.frozen
class ChannelOutcome:
    """How one message's delivery on one channel ended in a batch: delivered (no `failure`),
    failed for good (`failure`, the reason), or `deferred` to the channel's own deliverers."""

    message_id: UUID
    channel: str
    failure: str | None = None
    deferred: bool = False
    reached: tuple[UUID, ...] = ()  # the recipients who have the message on this channel now
    unreached: tuple[UUID, ...] = ()  # those it was for who do not (a failure stopped it)


@attrs.frozen
class RecordedBatch:
    changed: list[Message]  # what to write, each message once
    ended: list[tuple[ChannelOutcome, bool]]  # outcomes recorded, each with "its message is now terminal"
    routed: frozenset[UUID]  # accepted messages the write routes along with their outcomes
    # Written in the same transaction: the receipts of the recipients a channel reached, and a
    # `message.status` for each outcome recorded (see `domain.event_data`).
    delivered_receipts: list[tuple[UUID, UUID]] = attrs.Factory(list)  # (message id, recipient id)
    events: list[PendingEvent] = attrs.Factory(list)
    # Messages sent with failover: the outcomes per recipient, and the channels that take over
    # (to request their delivery once this is written).
    attempts: list[DeliveryAttempt] = attrs.Factory(list)
    failovers: list[tuple[Message, str]] = attrs.Factory(list)


def mark_routed(found: Mapping[UUID, Message], wanted: Iterable[UUID], now: datetime) -> list[Message]:
    """The messages among `wanted` (in that order) that were accepted and are routed now."""
    return [found[message_id] for message_id in wanted if message_id in found and found[message_id].mark_routed(now)]


def record_outcomes(
    current: Mapping[UUID, Message], outcomes: Sequence[ChannelOutcome], now: datetime
) -> RecordedBatch:
    """Records each outcome on its message as it is now (messages gone are skipped). A deferred
    channel stays pending, its message routed; an outcome already recorded (a redelivered event)
    changes nothing. Any change to an accepted message routes it. Each outcome recorded marks
    delivered the receipts of the recipients it reached, and tells the sender (`message.status`)."""
    accepted = {message_id for message_id, message in current.items() if message.status is MessageStatus.ACCEPTED}
    changed: dict[UUID, Message] = {}
    recorded = RecordedBatch([], [], frozenset())
    for outcome in outcomes:
        message = current.get(outcome.message_id)
        if message is None:
            continue
        if outcome.deferred:
            if message.mark_routed(now):
                changed[message.id] = message
        elif _record(recorded, message, outcome, now):
            changed[message.id] = message
    return attrs.evolve(recorded, changed=list(changed.values()), routed=frozenset(accepted & changed.keys()))


def _record(recorded: RecordedBatch, message: Message, outcome: ChannelOutcome, now: datetime) -> bool:
    """Records one outcome and what follows from it in `recorded`; False if it was known already."""
    tried = set(message.deliveries)
    if not message.record_delivery(outcome.channel, delivered=outcome.failure is None, now=now, detail=outcome.failure):
        return False
    recorded.ended.append((outcome, message.status.is_terminal))
    recorded.delivered_receipts.extend((message.id, recipient) for recipient in outcome.reached)
    recorded.events.extend(message_status(message, now, channel=outcome.channel, failure=outcome.failure))
    if message.failover:
        recorded.attempts.extend(
            attempts_of(message.id, outcome.channel, outcome.reached, outcome.unreached, now, outcome.failure)
        )
        recorded.failovers.extend((message, channel) for channel in message.deliveries if channel not in tried)
    return True
