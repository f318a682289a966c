"""The work an accepted message still needs, as typed events, and their one encoding.

An event travels as an `OutboxEvent`: the name of its stream, a key (the conversation, whose
events keep their order) and a JSON-able payload. That is what the outbox stores, the in-process
bus queues and Kafka carries (its topic is the stream's name behind the deployment's prefix), so
the stream names below are stored data: renaming one strands the events already written under it.

A new kind of event is a class here with the four members `EventKind` lists, added to `KINDS`;
the transports take whatever streams the dispatcher's handlers need (see `application.dispatch`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self
from uuid import UUID

import attrs

from chat4all.application.ports import OutboxEvent
from chat4all.domain.errors import InvalidInput

ROUTE_STREAM = "message_processing"
# Deliveries that failed for good (retry budget spent, or a permanent error), for inspection and replay.
DEAD_LETTER_STREAM = "delivery_dead_letters"
DELIVERY_STREAM_SUFFIX = "_outgoing"


def delivery_stream(channel: str) -> str:
    return f"{channel}{DELIVERY_STREAM_SUFFIX}"


class MalformedEvent(InvalidInput):
    """A payload that is not an event of its stream's kind (a use case rejects it, nobody retries it)."""

    code = "malformed_event"


class EventKind(Protocol):
    @classmethod
    def streams(cls, channels: Sequence[str]) -> list[str]:
        """Every stream events of this kind travel on, given the channels of the deployment."""
        ...

    @classmethod
    def travels_on(cls, stream: str) -> bool: ...

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> Self:
        """Raises KeyError, TypeError or ValueError on a payload that is not one of these."""
        ...

    def stream(self) -> str: ...

    def payload(self) -> dict[str, Any]: ...


@attrs.frozen
class RouteRequested:
    """A message was accepted (or is re-driven): decide where it goes."""

    message_id: UUID

    @classmethod
    def streams(cls, channels: Sequence[str]) -> list[str]:
        return [ROUTE_STREAM]

    @classmethod
    def travels_on(cls, stream: str) -> bool:
        return stream == ROUTE_STREAM

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> RouteRequested:
        return cls(UUID(str(payload["message_id"])))

    def stream(self) -> str:
        return ROUTE_STREAM

    def payload(self) -> dict[str, Any]:
        return {"message_id": str(self.message_id)}


@attrs.frozen
class DeliveryRequested:
    """A routed message waits for delivery on one channel, by that channel's deliverers."""

    message_id: UUID
    channel: str

    @classmethod
    def streams(cls, channels: Sequence[str]) -> list[str]:
        return [delivery_stream(channel) for channel in channels]

    @classmethod
    def travels_on(cls, stream: str) -> bool:
        return stream.endswith(DELIVERY_STREAM_SUFFIX)

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> DeliveryRequested:
        return cls(UUID(str(payload["message_id"])), _text(payload["channel"]))

    def stream(self) -> str:
        return delivery_stream(self.channel)

    def payload(self) -> dict[str, Any]:
        return {"message_id": str(self.message_id), "channel": self.channel}


@attrs.frozen
class DeadLettered:
    """A delivery failed for good; kept for inspection and replay."""

    message_id: UUID
    channel: str
    reason: str
    attempts: int

    @classmethod
    def streams(cls, channels: Sequence[str]) -> list[str]:
        return [DEAD_LETTER_STREAM]

    @classmethod
    def travels_on(cls, stream: str) -> bool:
        return stream == DEAD_LETTER_STREAM

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> DeadLettered:
        attempts = payload["attempts"]
        if not isinstance(attempts, int):
            raise TypeError("attempts must be a whole number")
        return cls(UUID(str(payload["message_id"])), _text(payload["channel"]), _text(payload["reason"]), attempts)

    def stream(self) -> str:
        return DEAD_LETTER_STREAM

    def payload(self) -> dict[str, Any]:
        return {
            "message_id": str(self.message_id),
            "channel": self.channel,
            "reason": self.reason,
            "attempts": self.attempts,
        }


WorkEvent = RouteRequested | DeliveryRequested | DeadLettered
KINDS: tuple[type[WorkEvent], ...] = (RouteRequested, DeliveryRequested, DeadLettered)


def encode(event: WorkEvent, key: UUID) -> OutboxEvent:
    """The event as it is stored and sent; `key` is the conversation whose events keep their order."""
    return OutboxEvent(event.stream(), str(key), event.payload())


def decode(stream: str, payload: object) -> WorkEvent:
    """The event a payload on `stream` holds; MalformedEvent if it holds none."""
    kind = kind_of(stream)
    if kind is None:
        raise MalformedEvent(f"no kind of event travels on {stream!r}")
    if not isinstance(payload, Mapping):
        raise MalformedEvent(f"an event on {stream} is an object, not {type(payload).__name__}")
    try:
        return kind.parse(payload)
    except (KeyError, TypeError, ValueError) as error:
        raise MalformedEvent(f"not a {kind.__name__} event: {type(error).__name__}: {error}") from None


def kind_of(stream: str) -> type[WorkEvent] | None:
    return next((kind for kind in KINDS if kind.travels_on(stream)), None)


def every_stream(channels: Sequence[str]) -> list[str]:
    """Every stream the hub publishes to, for a deployment with these channels."""
    return [stream for kind in KINDS for stream in kind.streams(channels)]


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value
