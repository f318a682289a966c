"""Every paged list (users, conversations, messages, history) is bounded by one rule."""

from __future__ import annotations

import pytest

from chat4all.domain.errors import InvalidInput
from chat4all.domain.history import PageRequest
from chat4all.domain.paging import MAX_OFFSET, MAX_PAGE, check_page


@pytest.mark.parametrize("limit, offset", [(1, 0), (MAX_PAGE, MAX_OFFSET), (50, None)])
def test_a_page_within_the_bounds_is_accepted(limit, offset):
    check_page(limit, offset)


@pytest.mark.parametrize(
    "limit, offset, field",
    [(0, 0, "limit"), (MAX_PAGE + 1, 0, "limit"), (10, -1, "offset"), (10, MAX_OFFSET + 1, "offset")],
)
def test_a_page_outside_the_bounds_is_refused_naming_the_field(limit, offset, field):
    with pytest.raises(InvalidInput) as refused:
        check_page(limit, offset)
    assert list(refused.value.field_errors) == [field]


def test_a_history_page_cannot_skip_past_what_a_database_integer_holds():
    with pytest.raises(InvalidInput) as refused:
        PageRequest(10, offset=MAX_OFFSET + 1)
    assert list(refused.value.field_errors) == ["offset"]
