"""Messages in storage. Two ports write them, one for each moment a message's rows change:

- `MessageIntake.accept` stores a message just accepted, with everything that must exist with it;
- `MessageBatches.change` records routing and delivery outcomes, a batch under row locks at a time.

`MessageRepository` is how a unit of work sees messages: reads, plus `add` and `update_many`, the
same two writes inside the caller's transaction. `UnitOfWorkIntake` (application.messaging) and
`UnitOfWorkMessageBatches` (application.message_batches) build the two ports on them for any unit of work;
an adapter that can do better implements the ports itself (the SQL adapters' map of who writes the
messages tables on each engine is in `chat4all.adapters.sql`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

import attrs

from chat4all.application.ports.events import OutboxEvent
from chat4all.domain.conversations import Conversation
from chat4all.domain.events import PendingEvent
from chat4all.domain.failover import DeliveryAttempt
from chat4all.domain.messages import Message


class MessageRepository(Protocol):
    async def add(self, message: Message, position: int) -> None:
        """Stores the message at `position` in its conversation (from `ConversationCounters`).
        Raises DuplicateMessage if the id exists (the unit of work is then unusable)."""
        ...

    async def get(self, message_id: UUID, *, for_update: bool = False) -> Message | None: ...

    async def get_many(self, message_ids: Sequence[UUID], *, for_update: bool = False) -> dict[UUID, Message]:
        """The messages found among `message_ids`, by id, with their deliveries; history is left
        empty (what `update_many` needs is tracked in `new_events`). With `for_update`, the rows
        are locked in id order, so two callers locking overlapping sets cannot deadlock."""
        ...

    async def update_many(self, messages: Sequence[Message]) -> None:
        """Persists what changed in each message since it was read, as its `new_events` say: the
        status (when one of them is a status change), the deliveries they are about, and the
        events themselves, appended to the history; then clears `new_events`. A `read_by_all_at`
        the message has is stored too if none was (it may come without an event: a message read
        by all before its channels answered). Nothing else is written."""
        ...

    async def list_for_conversation(self, conversation_id: UUID, *, limit: int, offset: int) -> tuple[list[Message], int]: ...

    async def unfinished_before(
        self, before: datetime, limit: int, *, after: tuple[datetime, UUID] | None = None
    ) -> list[Message]:
        """Messages accepted before `before` that have not reached a terminal status, oldest first
        (by acceptance time, then id; deliveries loaded, history left empty). `after`: only those
        after this (acceptance time, id), the last of the previous page."""
        ...


class MessageIntake(Protocol):
    async def accept(self, message: Message, conversation: Conversation, routing: OutboxEvent) -> bool:
        """Stores a just-accepted message of `conversation` atomically with everything that must
        exist with it (what `application.reading.store_new_message` writes): its position, channel
        deliveries and first history entry; the conversation's count, last message and activity
        time; a receipt and an unread count for each recipient; `message.created` in every member's
        event log; the share of its file with the conversation; and its `routing` outbox event.

        Returns False, storing nothing, when a message with the same id already exists.
        """
        ...


@attrs.frozen
class BatchWrite:
    """What a `MessageBatches.change` writes: the messages changed (as `update_many` writes them),
    the receipts a channel delivered (message id, recipient id) marked delivered at `at` if they
    were not yet, the events appended to users' logs, and the delivery attempts per recipient."""

    messages: Sequence[Message]
    delivered_receipts: Sequence[tuple[UUID, UUID]] = ()
    events: Sequence[PendingEvent] = ()
    at: datetime | None = None  # when the receipts were delivered; needed when there are any
    attempts: Sequence[DeliveryAttempt] = ()  # per recipient, for messages sent with failover

    def __attrs_post_init__(self) -> None:
        if self.delivered_receipts and self.at is None:
            raise ValueError("delivered receipts need the time they were delivered")


class MessageBatches(Protocol):
    """What routing and delivery need of message storage: batches of messages read as they are,
    and batches changed in one transaction under row locks."""

    async def read(self, message_ids: Sequence[UUID]) -> dict[UUID, Message]:
        """The messages found among `message_ids`, by id, with their deliveries; history is left
        empty. Nothing is locked: what was read may change before it is acted on."""
        ...

    async def change(
        self, message_ids: Sequence[UUID], apply: Callable[[dict[UUID, Message]], BatchWrite]
    ) -> dict[UUID, Message]:
        """In one transaction: locks the messages found among `message_ids` (in id order, so two
        overlapping batches wait for one another instead of deadlocking), reads them as they are
        once locked, calls `apply` with them (by id, as `read` returns them), writes what `apply`
        returns (status, changed deliveries and `new_events`, as `MessageRepository.update_many`
        does; the receipts, as `ReceiptRepository.mark_delivered`; the events, as
        `UserEventLog.append`, waking their readers where the log does), and commits. Returns the
        messages read, as `apply` left them.

        `apply` holds the decisions and no I/O; it is called once, even when no message was found.
        With no `message_ids` at all, nothing happens.
        """
        ...
