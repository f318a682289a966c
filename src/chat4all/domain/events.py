"""The per-user event log: its envelope, how events are numbered and how a client resumes.

Every stored event concerns one user and carries that user's next `seq`. A user's seqs are
1, 2, 3, ... with no gap and no repeat: the counter that hands them out is changed in the same
transaction as the events, so a rolled-back change takes its seqs back with it, and two changes
for the same user number their events one after the other, in the order they commit. A client
that has seen `seq` N has seen everything up to N; asking for what comes after N is all it needs
to resume. Old events are dropped after a retention period, always oldest first, so what is kept
is the tail of the log; a cursor older than that tail can no longer be served (`CursorExpired`).

`typing` is ephemeral: never stored, no seq, never replayed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import attrs

from chat4all.domain.errors import Gone, InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_WAIT_SECONDS = 30


class EventType(str, enum.Enum):
    MESSAGE_CREATED = "message.created"
    MESSAGE_STATUS = "message.status"
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_READ = "conversation.read"
    TYPING = "typing"

    @property
    def is_stored(self) -> bool:
        return self is not EventType.TYPING


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}; events carry timezone-aware UTC times")
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with a `Z`, as the HTTP API writes every time."""
    return utc(moment).isoformat().replace("+00:00", "Z")


def _stored(_: object, attribute: attrs.Attribute, value: EventType) -> None:
    if not value.is_stored:
        raise ValueError(f"{value.value} events are never stored")


def _positive(_: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} starts at 1, got {value}")


@attrs.frozen
class PendingEvent:
    """A stored event for `user_id` before the log gives it its seq."""

    user_id: UUID
    type: EventType = attrs.field(validator=_stored)
    at: datetime = attrs.field(converter=utc)
    data: Mapping[str, Any]


@attrs.frozen
class UserEvent:
    seq: int = attrs.field(validator=_positive)
    type: EventType = attrs.field(validator=_stored)
    at: datetime = attrs.field(converter=utc)
    data: Mapping[str, Any]

    def envelope(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type.value, "at": iso(self.at), "data": dict(self.data)}


@attrs.frozen
class EphemeralEvent:
    """An event that is only ever sent live (`typing`): it has no seq and no one can ask for it again."""

    type: EventType
    at: datetime = attrs.field(converter=utc)
    data: Mapping[str, Any]

    def __attrs_post_init__(self) -> None:
        if self.type.is_stored:
            raise ValueError(f"{self.type.value} events are stored; give them a seq")

    def envelope(self) -> dict[str, Any]:
        return {"type": self.type.value, "at": iso(self.at), "data": dict(self.data)}


def lock_order(user_ids: Iterable[UUID]) -> list[UUID]:
    """The order in which a transaction takes users' seq counters: ascending id, each once.
    Two transactions that both write events for users A and B then wait for one another instead
    of each holding one counter and waiting for the other's. (A UUID sorts here as PostgreSQL
    sorts it, byte by byte.)"""
    return sorted(set(user_ids))


def assign_seqs(last_seq: int, events: Sequence[PendingEvent]) -> list[UserEvent]:
    """Numbers one user's new events after `last_seq` (that user's counter), in the order given."""
    if last_seq < 0:
        raise ValueError(f"a seq counter is never negative, got {last_seq}")
    if len({event.user_id for event in events}) > 1:
        raise ValueError("assign_seqs numbers one user's events; use number_events for several users")
    return [UserEvent(last_seq + offset, event.type, event.at, event.data) for offset, event in enumerate(events, 1)]


def number_events(
    last_seqs: Mapping[UUID, int], events: Sequence[PendingEvent]
) -> tuple[list[tuple[UUID, UserEvent]], dict[UUID, int]]:
    """Numbers the events of several users (each after that user's counter in `last_seqs`, 0 if
    absent), keeping each user's events in the order given. Returns the numbered events, in the
    order given, and every counter's new value."""
    counters = {user_id: last_seqs.get(user_id, 0) for user_id in lock_order(event.user_id for event in events)}
    numbered: list[tuple[UUID, UserEvent]] = []
    for event in events:
        counters[event.user_id] += 1
        numbered.append((event.user_id, UserEvent(counters[event.user_id], event.type, event.at, event.data)))
    return numbered, counters


class CursorExpired(Gone):
    """Events after the cursor were dropped (retention): the client must reload its state over
    REST, then resume from `resume_from`."""

    code = "cursor_expired"

    def __init__(self, detail: str, *, resume_from: int) -> None:
        super().__init__(detail)
        self.resume_from = resume_from


@attrs.frozen
class LogBounds:
    """What one user's log holds: seqs `oldest`..`last` (`oldest` None when nothing is kept).
    `last` is the counter: it survives the events it numbered."""

    oldest: int | None
    last: int

    def __attrs_post_init__(self) -> None:
        if self.last < 0 or (self.oldest is not None and not 1 <= self.oldest <= self.last):
            raise ValueError(f"inconsistent log bounds oldest={self.oldest} last={self.last}")

    @property
    def first_available(self) -> int:
        return self.oldest if self.oldest is not None else self.last + 1


@attrs.frozen
class EventQuery:
    """`since`: the last seq the client has (None: start from now, replaying nothing);
    `limit`: at most this many events (1-500); `timeout`: how long to wait when there are none (0-30 s)."""

    since: int | None = None
    limit: int = DEFAULT_LIMIT
    timeout: float = 0

    def __attrs_post_init__(self) -> None:
        if self.since is not None and self.since < 0:
            raise InvalidInput("since must be >= 0", code="invalid_cursor", field_errors={"since": [">= 0"]})
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be 1-{MAX_LIMIT}", field_errors={"limit": [f"1-{MAX_LIMIT}"]})
        if not 0 <= self.timeout <= MAX_WAIT_SECONDS:
            raise InvalidInput(
                f"timeout must be 0-{MAX_WAIT_SECONDS} seconds", field_errors={"timeout": [f"0-{MAX_WAIT_SECONDS}"]}
            )


def resolve_since(since: int | None, bounds: LogBounds) -> int:
    """The seq to read after.

    - None: the newest seq (a client that has just loaded its state over REST starts there);
    - beyond the newest seq (a client whose server was restored from an older backup, say):
      the newest seq. The answer's `next` then moves the client's cursor back, and the events
      numbered again from there reach it instead of being taken for ones it already has;
    - older than what is kept: `CursorExpired`, as events after it are gone.
    """
    if since is None or since > bounds.last:
        return bounds.last
    if since + 1 < bounds.first_available:
        raise CursorExpired(
            f"events after {since} are no longer kept (oldest kept: {bounds.first_available}); "
            f"reload over REST, then resume from {bounds.last}",
            resume_from=bounds.last,
        )
    return since


def require_contiguous(since: int, events: Sequence[UserEvent], bounds_last: int) -> None:
    """A page read after `since` must start at `since + 1` and have no gap; otherwise events were
    dropped between reading the bounds and the page, and resuming from it would skip them."""
    expected = range(since + 1, since + 1 + len(events))
    if [event.seq for event in events] != list(expected):
        raise CursorExpired(
            f"events after {since} were dropped while being read; reload over REST, then resume from {bounds_last}",
            resume_from=bounds_last,
        )


def next_cursor(since: int, events: Sequence[UserEvent]) -> int:
    """The cursor a client resumes from after this page: always the answer's, never its own guess."""
    return events[-1].seq if events else since
