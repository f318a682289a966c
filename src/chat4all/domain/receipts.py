"""Who has received and read what: per-recipient receipts, read horizons and unread counts.

Messages of a conversation have a `position`: 1, 2, 3, ... in the order they were accepted, with
no gap (messages are never deleted one by one). A member's read horizon is the position up to
which they have read; it only moves forward, and an older `up_to` changes nothing.

Each recipient of a message (`Conversation.recipients_of`: the `to` member, or every member but
the sender) gets a receipt: `delivered_at` once a channel delivered the message (or once they
read it: reading it proves they have it), `read_at` once their horizon passes it. A member's
unread count in a conversation is the number of their receipts there not yet read: a message
addressed to someone else (a `to` in a group) is visible to them but is not theirs to read, and
their own messages are never unread to them.

The count is kept on write rather than counted per request: +1 for each recipient when a message
is accepted, and minus the receipts a horizon advance turns read. It never needs a recount, and
the property tests check that it always equals one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import attrs


@attrs.frozen
class Receipt:
    message_id: UUID
    recipient_id: UUID
    delivered_at: datetime | None = None
    read_at: datetime | None = None

    def delivered(self, at: datetime) -> Receipt | None:
        """This receipt once a channel delivered the message at `at`; None if it already was."""
        if self.delivered_at is not None:
            return None
        return attrs.evolve(self, delivered_at=at)

    def read(self, at: datetime) -> Receipt | None:
        """This receipt once its recipient read the message at `at`; None if they already had."""
        if self.read_at is not None:
            return None
        return attrs.evolve(self, read_at=at, delivered_at=self.delivered_at or at)


def read_by_all(receipts: Iterable[Receipt]) -> bool:
    """Every recipient has read the message (a message always has at least one recipient)."""
    receipts = list(receipts)
    return bool(receipts) and all(receipt.read_at is not None for receipt in receipts)


@attrs.frozen
class MessageRef:
    """A message and its place in its conversation."""

    message_id: UUID
    position: int

    def __attrs_post_init__(self) -> None:
        if self.position < 1:
            raise ValueError(f"positions start at 1, got {self.position}")


@attrs.frozen
class ReadHorizon:
    """How far `member_id` has read `conversation_id`, and how many of their messages there are unread.
    A member who has read nothing has position 0 (and no message id or time)."""

    conversation_id: UUID
    member_id: UUID
    position: int = 0
    message_id: UUID | None = None
    read_at: datetime | None = None
    unread_count: int = 0

    def __attrs_post_init__(self) -> None:
        if self.position < 0 or self.unread_count < 0:
            raise ValueError(f"position {self.position} and unread count {self.unread_count} are never negative")

    def covers(self, position: int) -> bool:
        return position <= self.position

    def count_new(self, position: int) -> ReadHorizon:
        """A message addressed to this member was accepted at `position`. A new message always lies
        beyond the horizon (the horizon only points at messages that already exist); one that does
        not is already read and counts for nothing."""
        if self.covers(position):
            return self
        return attrs.evolve(self, unread_count=self.unread_count + 1)

    def advance(self, up_to: MessageRef, at: datetime, newly_read: Iterable[int]) -> ReadHorizon | None:
        """The horizon moved to `up_to` at `at`; None when `up_to` is not past it (nothing changes).

        `newly_read`: the positions of this member's receipts that this advance turned read. Only
        those between the old horizon (excluded) and `up_to` (included) count, each once. (The
        count is not simply reset when `up_to` is the newest message: a message accepted while
        this advance is decided lies beyond `up_to` and stays unread.)
        """
        if self.covers(up_to.position):
            return None
        counted = {position for position in newly_read if self.position < position <= up_to.position}
        # Never below zero: were the count ever to drift, reading everything heals it instead of failing.
        unread = max(0, self.unread_count - len(counted))
        return attrs.evolve(self, position=up_to.position, message_id=up_to.message_id, read_at=at, unread_count=unread)
