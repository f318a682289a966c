"""History pages by position: any page is a range of at most `limit` positions, at any depth."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat4all.domain.errors import InvalidInput
from chat4all.domain.history import HistoryCursor, PageRequest, page_links
from chat4all.domain.paging import MAX_PAGE


def cursor_at(position: int) -> HistoryCursor:
    return HistoryCursor(position, UUID(int=position))


def page(total: int, request: PageRequest) -> list[int]:
    span = request.positions(total)
    return list(range(span.first, span.last + 1))


@given(position=st.integers(1, 10**15), message_id=st.uuids())
def test_a_cursor_reads_back_as_it_was_written(position, message_id):
    cursor = HistoryCursor(position, message_id)
    token = cursor.encode()
    assert HistoryCursor.decode(token) == cursor
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token


@pytest.mark.parametrize(
    "token",
    ["", "abc", "%%%", "MTox", HistoryCursor(1, UUID(int=1)).encode()[:-3], "Mjox" + "A" * 100, "MDoxOjA"],
)
def test_a_token_that_is_not_a_cursor_is_refused_clearly(token):
    with pytest.raises(InvalidInput) as refused:
        HistoryCursor.decode(token, "before")
    assert refused.value.code == "invalid_cursor"
    assert "before" in refused.value.field_errors


def test_another_version_or_a_position_below_one_is_refused():
    import base64

    for text in (f"2:5:{UUID(int=1).hex}", f"1:0:{UUID(int=1).hex}"):
        token = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        with pytest.raises(InvalidInput):
            HistoryCursor.decode(token)


@settings(max_examples=200)
@given(total=st.integers(0, 400), limit=st.integers(1, MAX_PAGE), offset=st.integers(0, 500))
def test_an_offset_page_holds_what_offset_and_limit_always_gave(total, limit, offset):
    everything = list(range(1, total + 1))
    assert page(total, PageRequest(limit, offset=offset)) == everything[offset : offset + limit]


@settings(max_examples=200)
@given(total=st.integers(0, 400), limit=st.integers(1, MAX_PAGE))
def test_following_after_cursors_visits_every_message_once_in_order(total, limit):
    seen, request = [], PageRequest(limit)
    while True:
        positions = page(total, request)
        assert len(positions) <= limit
        seen += positions
        links = page_links(total, cursor_at(positions[0]) if positions else None, cursor_at(positions[-1]) if positions else None)
        if links.after is None:
            break
        request = PageRequest(limit, after=links.after)
    assert seen == list(range(1, total + 1))


@settings(max_examples=200)
@given(total=st.integers(1, 400), limit=st.integers(1, MAX_PAGE))
def test_following_before_cursors_from_the_newest_visits_every_message_once(total, limit):
    seen, request = [], PageRequest(limit, before=cursor_at(total + 1))
    while True:
        positions = page(total, request)
        assert 1 <= len(positions) <= limit and positions == sorted(positions)
        seen = positions + seen
        links = page_links(total, cursor_at(positions[0]), cursor_at(positions[-1]))
        if links.before is None:
            break
        request = PageRequest(limit, before=links.before)
    assert seen == list(range(1, total + 1))


@given(total=st.integers(0, 50), limit=st.integers(1, MAX_PAGE), position=st.integers(1, 10**9))
def test_a_cursor_beyond_the_conversation_gives_the_newest_or_nothing(total, limit, position):
    assert all(1 <= p <= total for p in page(total, PageRequest(limit, before=cursor_at(position))))
    assert all(position < p <= total for p in page(total, PageRequest(limit, after=cursor_at(position))))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        (dict(limit=0), ["limit"]),
        (dict(limit=MAX_PAGE + 1), ["limit"]),
        (dict(limit=10, offset=-1), ["offset"]),
        (dict(limit=10, offset=0, before=cursor_at(3)), ["offset", "before"]),
        (dict(limit=10, before=cursor_at(3), after=cursor_at(1)), ["before", "after"]),
    ],
)
def test_a_page_request_outside_the_rules_is_refused_naming_the_fields(fields, named):
    with pytest.raises(InvalidInput) as refused:
        PageRequest(**fields)
    assert sorted(refused.value.field_errors) == sorted(named)
