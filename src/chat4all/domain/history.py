"""Pages of a conversation's history that cost the same at any depth.

A conversation's messages are numbered 1, 2, 3, ... (`position`) in the order they were accepted:
the conversation keeps a message counter, and each accepted message takes the next number in the
transaction that stores it, under the lock the conversation's row already takes then. So the
numbers have no gap and no repeat, a committed message never gets a number below one already
visible, and the counter is the conversation's `total` without counting rows.

Because there is no gap, every page is a range of positions, found through the
(conversation, position) index in as many steps for the millionth message as for the first:
- `offset` (kept for existing clients): positions offset+1 .. offset+limit;
- `after` a cursor: the `limit` positions right after it;
- `before` a cursor: the `limit` positions right before it.
Pages list messages oldest first, as offset pages always have.

This holds while messages are never deleted one by one; deleting them would need tombstones
(keeping the number) or a different paging for offsets.
"""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

import attrs

from chat4all.domain.errors import InvalidInput
from chat4all.domain.paging import check_page

_CURSOR_VERSION = "1"


def _invalid_cursor(name: str) -> InvalidInput:
    return InvalidInput(
        f"{name} is not a cursor this API issued", code="invalid_cursor", field_errors={name: ["a cursor from a page"]}
    )


@attrs.frozen
class HistoryCursor:
    """A place in a conversation's history, opaque to clients: the position and the message there."""

    position: int
    message_id: UUID

    def encode(self) -> str:
        text = f"{_CURSOR_VERSION}:{self.position}:{self.message_id.hex}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, name: str = "cursor") -> HistoryCursor:
        if len(token) > 80:
            raise _invalid_cursor(name)
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            version, position, message_id = text.split(":")
            cursor = cls(int(position), UUID(hex=message_id))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise _invalid_cursor(name) from None
        if version != _CURSOR_VERSION or cursor.position < 1:
            raise _invalid_cursor(name)
        return cursor


@attrs.frozen
class PositionRange:
    """Positions `first` .. `last`, both included; empty when `first` > `last`."""

    first: int
    last: int

    @property
    def empty(self) -> bool:
        return self.first > self.last

    def __len__(self) -> int:
        return max(0, self.last - self.first + 1)


@attrs.frozen
class PageRequest:
    limit: int
    offset: int | None = None
    before: HistoryCursor | None = None
    after: HistoryCursor | None = None

    def __attrs_post_init__(self) -> None:
        check_page(self.limit, self.offset)
        given = [name for name in ("offset", "before", "after") if getattr(self, name) is not None]
        if len(given) > 1:
            raise InvalidInput(
                f"give at most one of offset, before and after (got {', '.join(given)})",
                field_errors={name: ["only one of offset, before, after"] for name in given},
            )

    def positions(self, total: int) -> PositionRange:
        """The positions this page holds in a conversation of `total` messages."""
        if self.before is not None:
            last = min(self.before.position - 1, total)
            return PositionRange(max(1, last - self.limit + 1), last)
        start = self.after.position if self.after is not None else (self.offset or 0)
        return PositionRange(start + 1, min(start + self.limit, total))


@attrs.frozen
class PageLinks:
    """Where a client goes from a page: cursors to the messages before and after it, if any."""

    before: HistoryCursor | None
    after: HistoryCursor | None


def page_links(total: int, first: HistoryCursor | None, last: HistoryCursor | None) -> PageLinks:
    """`first` and `last`: the cursors of a page's first and last messages (None on an empty page)."""
    before = first if first is not None and first.position > 1 else None
    after = last if last is not None and last.position < total else None
    return PageLinks(before, after)
