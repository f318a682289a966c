"""How much one page of a list may hold, and the one check of a page request: every list the API
returns (users, conversations, messages, history) is paged by these rules."""

from __future__ import annotations

from chat4all.domain.errors import InvalidInput

MAX_PAGE = 100
# An offset is bounded so that no value can overflow a database integer (an unbounded one once gave a 500).
MAX_OFFSET = 2**31 - 1


def check_page(limit: int, offset: int | None = None) -> None:
    """Refuses a page size outside 1-MAX_PAGE and an offset outside 0-MAX_OFFSET (None: no offset)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1-{MAX_PAGE}", field_errors={"limit": [f"1-{MAX_PAGE}"]})
    if offset is not None and not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be 0-{MAX_OFFSET}", field_errors={"offset": [f"0-{MAX_OFFSET}"]})
