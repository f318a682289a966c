"""Messages and their delivery status machine.

A message is `accepted`, then `routed` into one delivery per channel; each delivery ends
`delivered` or `failed`, and once every delivery has ended the message takes its terminal
status: `delivered` if every channel delivered, otherwise `failed`. Status never moves backwards. A
message sent with failover tries its channels one after another instead (`domain.failover`).

A `delivered` message becomes `read` once every recipient has read it (see `domain.receipts`).
Reads and channel outcomes arrive in any order: when the last recipient reads it before the
last channel has answered, the message is `delivered` and then, at the same moment, `read`.
A `failed` message stays `failed` even when every recipient has read it (in a chat client, say):
the overall status is what the hub did on the channels, and `read` would hide a channel that
never got the message from the sender and from operators. Who has read it is still told by its
receipts and by `read_by_all_at`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.domain.errors import InvalidInput
from chat4all.domain.failover import chain_delivered, next_step

MAX_TEXT_LENGTH = 4096


class MessageStatus(str, enum.Enum):
    ACCEPTED = "accepted"
    ROUTED = "routed"
    DELIVERED = "delivered"
    FAILED = "failed"
    READ = "read"

    @property
    def is_terminal(self) -> bool:
        """Every channel has ended; nothing is left to deliver (a `delivered` message may still become `read`)."""
        return self in (MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.READ)


_ORDER = {
    MessageStatus.ACCEPTED: 0,
    MessageStatus.ROUTED: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.FAILED: 2,
    MessageStatus.READ: 3,
}


def can_transition(current: MessageStatus, target: MessageStatus) -> bool:
    if target is MessageStatus.READ:
        return current is MessageStatus.DELIVERED  # never over a failed channel (see the module docstring)
    return _ORDER[target] > _ORDER[current]


# The history entry of a failover step: `channel` takes over from a channel that failed for good.
FAILOVER = "failover"


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Priority(str, enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


@attrs.frozen
class TextPayload:
    text: str
    type: str = "text"

    def __attrs_post_init__(self) -> None:
        if not 1 <= len(self.text) <= MAX_TEXT_LENGTH:
            raise InvalidInput(
                f"text must be 1-{MAX_TEXT_LENGTH} characters",
                field_errors={"payload.text": [f"1-{MAX_TEXT_LENGTH} characters"]},
            )
        if "\x00" in self.text:
            raise InvalidInput("text must not contain NUL characters", field_errors={"payload.text": ["no NUL characters"]})

    def canonical(self) -> dict:
        return {"type": "text", "text": self.text}


@attrs.frozen
class FilePayload:
    file_id: UUID
    filename: str
    file_size: int
    content_type: str
    checksum: str
    type: str = "file"

    def canonical(self) -> dict:
        return {"type": "file", "file_id": str(self.file_id)}


Payload = TextPayload | FilePayload


@attrs.frozen
class StatusEvent:
    status: str
    at: datetime
    channel: str | None = None
    detail: str | None = None


@attrs.frozen
class MessageDraft:
    """What a client asked to send; two sends are the same message only if their drafts match."""

    message_id: UUID
    conversation_id: UUID
    sender_id: UUID
    recipient_id: UUID | None
    channels: tuple[str, ...]
    payload: Payload
    priority: Priority
    failover: tuple[str, ...] = ()  # see domain.failover
    # The channel a reply came in from (None: sent through the API); not part of the fingerprint.
    origin: str | None = None

    def fingerprint(self) -> str:
        body = {
            "conversation_id": str(self.conversation_id),
            "from": str(self.sender_id),
            "to": str(self.recipient_id) if self.recipient_id else None,
            "channels": sorted(self.channels),
            "payload": self.payload.canonical(),
            "priority": self.priority.value,
        }
        if self.failover:  # only when given, so that the fingerprints stored before failover stay valid
            body["failover"] = list(self.failover)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@attrs.define(eq=False)
class Message:
    id: UUID
    conversation_id: UUID
    sender_id: UUID
    recipient_id: UUID | None
    channels: tuple[str, ...]
    payload: Payload
    priority: Priority
    fingerprint: str
    status: MessageStatus
    created_at: datetime
    deliveries: dict[str, DeliveryStatus] = attrs.field(factory=dict)
    history: list[StatusEvent] = attrs.field(factory=list)
    # History entries added since load; repositories append these and clear the list.
    new_events: list[StatusEvent] = attrs.field(factory=list)
    # When the last recipient read it; set once, whatever the channels did.
    read_by_all_at: datetime | None = None
    failover: tuple[str, ...] = ()  # channels tried in order after `channels` (see domain.failover)

    @property
    def chain(self) -> tuple[str, ...]:
        return self.channels + self.failover
    origin: str | None = None  # see MessageDraft.origin

    @classmethod
    def accept(cls, draft: MessageDraft, now: datetime) -> Message:
        message = cls(
            id=draft.message_id,
            conversation_id=draft.conversation_id,
            sender_id=draft.sender_id,
            recipient_id=draft.recipient_id,
            channels=draft.channels,
            payload=draft.payload,
            priority=draft.priority,
            fingerprint=draft.fingerprint(),
            status=MessageStatus.ACCEPTED,
            created_at=now,
            deliveries={channel: DeliveryStatus.PENDING for channel in draft.channels},
            failover=draft.failover,
            origin=draft.origin,
        )
        message._record(StatusEvent(MessageStatus.ACCEPTED.value, now))
        return message

    def _record(self, event: StatusEvent) -> None:
        self.history.append(event)
        self.new_events.append(event)

    def mark_routed(self, now: datetime) -> bool:
        """Returns False when the message was already routed (a redelivered routing request)."""
        if not can_transition(self.status, MessageStatus.ROUTED):
            return False
        self.status = MessageStatus.ROUTED
        self._record(StatusEvent(MessageStatus.ROUTED.value, now, detail=", ".join(self.channels)))
        return True

    def pending_channels(self) -> list[str]:
        return [channel for channel, status in self.deliveries.items() if status is DeliveryStatus.PENDING]

    def record_delivery(self, channel: str, *, delivered: bool, now: datetime, detail: str | None = None) -> bool:
        """Records one channel's outcome once; returns False if that channel had already ended."""
        if self.deliveries.get(channel) is not DeliveryStatus.PENDING:
            return False
        if self.status is MessageStatus.ACCEPTED:
            self.mark_routed(now)
        outcome = DeliveryStatus.DELIVERED if delivered else DeliveryStatus.FAILED
        self.deliveries[channel] = outcome
        self._record(StatusEvent(outcome.value, now, channel=channel, detail=detail))
        if not delivered:
            self._fail_over(channel, now)
        if not self.pending_channels():
            self._finish(now)
        return True

    def _fail_over(self, failed: str, now: datetime) -> None:
        """Hands the recipients `failed` did not reach to the next channel of the chain, if any."""
        following = next_step(self.chain, self.deliveries, failed)
        if following is not None:
            self.deliveries[following] = DeliveryStatus.PENDING
            self._record(StatusEvent(FAILOVER, now, channel=following, detail=f"{failed} failed; trying {following}"))

    def _finish(self, now: datetime) -> None:
        failed = [channel for channel, status in self.deliveries.items() if status is DeliveryStatus.FAILED]
        if self.failover:
            outcomes = {channel: status is DeliveryStatus.DELIVERED for channel, status in self.deliveries.items()}
            all_delivered = chain_delivered(self.chain, outcomes)
        else:
            all_delivered = not failed
        final = MessageStatus.DELIVERED if all_delivered else MessageStatus.FAILED
        if can_transition(self.status, final):
            self.status = final
            self._record(StatusEvent(final.value, now, detail=self._final_detail(all_delivered, failed)))
            if self.read_by_all_at is not None:
                self._become_read(now)

    def _final_detail(self, all_delivered: bool, failed: list[str]) -> str | None:
        if not all_delivered:
            return "failed on: " + ", ".join(failed)
        if not failed:
            return None
        delivered = [channel for channel, status in self.deliveries.items() if status is DeliveryStatus.DELIVERED]
        return f"delivered on: {delivered[-1]} (after {', '.join(failed)} failed)"

    def record_read_by_all(self, now: datetime) -> bool:
        """The last recipient has read the message. Returns False when that was already known."""
        if self.read_by_all_at is not None:
            return False
        self.read_by_all_at = now
        self._become_read(now)
        return True

    def _become_read(self, now: datetime) -> None:
        if can_transition(self.status, MessageStatus.READ):
            self.status = MessageStatus.READ
            self._record(StatusEvent(MessageStatus.READ.value, now))
