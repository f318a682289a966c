"""Read state in storage: conversations' message counters, members' read horizons, receipts,
and history pages by position (see `domain.receipts` and `domain.history`).

Lock order. Every transaction that writes any of these, or the event log, takes its row locks
in this order, each kind in ascending id order, so no two of them can each hold what the other
waits for: conversations -> conversation_reads -> messages -> message_receipts -> user_event_counters.
(Accepting a message locks its conversation, then bumps its recipients' unread counts, then
numbers its events; a read locks the reader's horizon, then the messages it reads, then numbers
events; a delivery locks its messages, then their receipts, then numbers events.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

import attrs

from chat4all.domain.failover import DeliveryAttempt
from chat4all.domain.history import PositionRange
from chat4all.domain.messages import Message
from chat4all.domain.receipts import ReadHorizon, Receipt


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
        """Counts a message being accepted, before it is stored: the conversation's message count
        + 1 is its position (returned), it becomes the last message and `at` the last activity
        (if later). The conversation's row stays locked until the unit of work ends, so positions
        follow the order in which messages commit and have no gap."""
        ...


class ReadHorizonRepository(Protocol):
    async def get(self, conversation_id: UUID, member_id: UUID) -> ReadHorizon:
        """The member's horizon (position 0, nothing unread, if they never had one), locked until
        the unit of work ends (a row is created for it if there was none, so that it can be)."""
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
        read by all. Returns one mark per receipt it changed, by position."""
        ...

    async def mark_delivered(self, receipts: Sequence[tuple[UUID, UUID]], at: datetime) -> None:
        """Marks delivered at `at` those of the receipts (message id, recipient id) that are not yet.
        The caller holds the locks of their messages."""
        ...

    async def for_message(self, message_id: UUID) -> list[Receipt]: ...

    async def record_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        """Appends delivery attempts (messages sent with failover keep one per recipient and outcome)."""
        ...

    async def attempts_for(self, message_id: UUID) -> list[DeliveryAttempt]:
        """The message's delivery attempts, in the order they were recorded."""
        ...


class MessageHistory(Protocol):
    async def total(self, conversation_id: UUID) -> int:
        """How many messages the conversation has: its counter, not a count of rows."""
        ...

    async def at_positions(self, conversation_id: UUID, positions: PositionRange) -> list[tuple[int, Message]]:
        """The messages at `positions` (an index range scan; no OFFSET), ascending, each with its
        position; deliveries loaded, history left empty."""
        ...

    async def latest(self, conversation_ids: Sequence[UUID]) -> dict[UUID, Message]:
        """Each conversation's last message (kept on write, see `ConversationCounters`), for those
        that have one; deliveries loaded, history left empty."""
        ...
