"""Ports of the recipient side: the per-user event log, wake-ups, read horizons and receipts.

Lock order. Every transaction that writes any of these takes its row locks in this order, each
kind in ascending id order, so no two of them can each hold what the other waits for:
conversations -> conversation_reads -> messages -> message_receipts -> user_event_counters.
(Accepting a message locks its conversation, then bumps its recipients' unread counts, then
numbers its events; a read locks the reader's horizon, then the messages it reads, then numbers
events; a delivery locks its messages, then their receipts, then numbers events.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

import attrs

from chat4all.application.ports import UnitOfWork
from chat4all.domain.events import LogBounds, PendingEvent, UserEvent
from chat4all.domain.history import PositionRange
from chat4all.domain.messages import Message
from chat4all.domain.receipts import ReadHorizon, Receipt


class UserEventLog(Protocol):
    """Appends to users' logs inside a unit of work: the events commit, or roll back, with the change
    that caused them."""

    async def append(self, events: Sequence[PendingEvent]) -> list[tuple[UUID, UserEvent]]:
        """Numbers and stores the events (each user's next seqs, in the order given; see
        `domain.events.number_events`). Each user's counter row is updated in place (`UPDATE ...
        RETURNING`, or an upsert for a user's first event), in `lock_order`, and stays locked until
        the unit of work ends: a user's events are numbered in the order their transactions commit,
        so a reader that has seen seq N never later finds a committed N-1 it skipped."""
        ...


class UserEventReader(Protocol):
    """Reads users' logs and drops old events; outside any unit of work (a long poll holds no transaction)."""

    async def bounds(self, user_id: UUID) -> LogBounds: ...

    async def read_after(self, user_id: UUID, after: int, limit: int) -> tuple[LogBounds, list[UserEvent]]:
        """The user's bounds and up to `limit` of their events with seq > `after`, ascending."""
        ...

    async def purge_before(self, before: datetime, limit: int) -> int:
        """Drops up to `limit` events older than `before`, and returns how many. Per user only a
        prefix is dropped (every event up to the newest one older than `before`), so what is kept
        is always the tail of the log even when two processes' clocks disagree about `at`. The
        counters stay: a user's next event never reuses a dropped seq."""
        ...


class WakeUp(Protocol):
    async def wait(self, timeout: float) -> bool:
        """Waits until the user may have new events (True) or `timeout` seconds pass (False).
        A notification that came after `listen` was entered and before this call counts."""
        ...


class EventNotifier(Protocol):
    """Wakes the readers waiting for users' events. Only a hint: readers then read the log, which
    is the truth; a lost or spurious wake-up costs a wait or a read, never an event."""

    def listen(self, user_id: UUID) -> AbstractAsyncContextManager[WakeUp]:
        """Listening starts on entry, before the reader reads the log, so an event committed between
        that read and the wait still wakes it."""
        ...

    def notify(self, user_ids: Iterable[UUID]) -> None:
        """Called after the commit of events for `user_ids` (in every process the readers may be in)."""
        ...


@attrs.frozen
class LocatedMessage:
    message_id: UUID
    conversation_id: UUID
    position: int


@attrs.frozen
class ReadMark:
    """A receipt that a read turned read, and whether its message is now read by all its recipients."""

    message_id: UUID
    position: int
    read_by_all: bool


class ConversationCounters(Protocol):
    async def record_message(self, conversation_id: UUID, message_id: UUID, at: datetime) -> int:
        """Counts a newly accepted message: the conversation's message count + 1 is its position
        (returned), it becomes the last message and `at` the last activity (if later). The
        conversation's row stays locked until the unit of work ends, so positions follow the
        order in which messages commit and have no gap."""
        ...


class ReadHorizonRepository(Protocol):
    async def get(self, conversation_id: UUID, member_id: UUID) -> ReadHorizon:
        """The member's horizon (position 0, nothing unread, if they never had one), locked until
        the unit of work ends."""
        ...

    async def save(self, horizon: ReadHorizon) -> None: ...

    async def count_new(self, conversation_id: UUID, recipients: Sequence[UUID], position: int) -> None:
        """`ReadHorizon.count_new` for each recipient, as one atomic increment per row (rows are
        created on first use), in recipient id order."""
        ...

    async def for_member(self, member_id: UUID, conversation_ids: Sequence[UUID]) -> dict[UUID, ReadHorizon]:
        """The member's horizons in these conversations (those they never had are left out)."""
        ...


class ReceiptRepository(Protocol):
    async def add(self, message: Message, position: int, recipients: Sequence[UUID]) -> None:
        """One receipt per recipient of a newly accepted message, neither delivered nor read."""
        ...

    async def locate(self, message_id: UUID) -> LocatedMessage | None: ...

    async def mark_read(self, conversation_id: UUID, reader: UUID, *, after: int, up_to: int, at: datetime) -> list[ReadMark]:
        """Marks read (and delivered, if not yet) the reader's unread receipts of the messages at
        positions `after` < p <= `up_to`. Locks those messages first, in id order, so two members
        reading the last unread copies of one message at once cannot both miss that it is now
        read by all. Returns one mark per receipt it changed."""
        ...

    async def mark_delivered(self, message_id: UUID, at: datetime) -> list[Receipt]:
        """Marks delivered the message's receipts that are not yet; returns them as changed."""
        ...

    async def for_message(self, message_id: UUID) -> list[Receipt]: ...


class MessageHistory(Protocol):
    async def total(self, conversation_id: UUID) -> int:
        """How many messages the conversation has: its counter, not a count of rows."""
        ...

    async def at_positions(self, conversation_id: UUID, positions: PositionRange) -> list[tuple[int, Message]]:
        """The messages at `positions` (an index range scan; no OFFSET), ascending, each with its
        position; deliveries loaded, history left empty."""
        ...


class ReadingUnitOfWork(UnitOfWork, Protocol):
    events: UserEventLog
    conversation_counters: ConversationCounters
    history: MessageHistory
    read_horizons: ReadHorizonRepository
    receipts: ReceiptRepository


class ReadingUnitOfWorkFactory(Protocol):
    def __call__(self) -> ReadingUnitOfWork: ...
