"""The per-user event log's rules: numbering, resuming, retention, ephemeral events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat4all.domain.errors import InvalidInput
from chat4all.domain.events import (
    MAX_LIMIT,
    MAX_WAIT_SECONDS,
    CursorExpired,
    EphemeralEvent,
    EventQuery,
    EventType,
    LogBounds,
    PendingEvent,
    UserEvent,
    assign_seqs,
    lock_order,
    next_cursor,
    number_events,
    require_contiguous,
    resolve_since,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
USERS = [UUID(int=number) for number in (3, 1, 2)]
STORED = [event_type for event_type in EventType if event_type.is_stored]


def pending(user: UUID, number: int = 0) -> PendingEvent:
    return PendingEvent(user, EventType.MESSAGE_CREATED, NOW, {"n": number})


@given(last=st.integers(0, 10**12), count=st.integers(0, 20))
def test_a_users_events_take_the_seqs_right_after_its_counter_in_order(last: int, count: int):
    events = assign_seqs(last, [pending(USERS[0], number) for number in range(count)])
    assert [event.seq for event in events] == list(range(last + 1, last + 1 + count))
    assert [event.data["n"] for event in events] == list(range(count))


@given(
    last_seqs=st.dictionaries(st.sampled_from(USERS), st.integers(0, 1000)),
    owners=st.lists(st.sampled_from(USERS), max_size=40),
)
def test_several_users_events_are_numbered_per_user_without_gaps_or_reordering(last_seqs, owners):
    events = [pending(owner, number) for number, owner in enumerate(owners)]
    numbered, counters = number_events(last_seqs, events)
    assert [(user, event.data["n"]) for user, event in numbered] == [(owner, n) for n, owner in enumerate(owners)]
    for user in set(owners):
        seqs = [event.seq for owner, event in numbered if owner == user]
        start = last_seqs.get(user, 0)
        assert seqs == list(range(start + 1, start + 1 + len(seqs)))
        assert counters[user] == start + len(seqs)
    assert set(counters) == set(owners)


def test_assign_seqs_refuses_a_mix_of_users_and_a_negative_counter():
    with pytest.raises(ValueError):
        assign_seqs(0, [pending(USERS[0]), pending(USERS[1])])
    with pytest.raises(ValueError):
        assign_seqs(-1, [pending(USERS[0])])


@given(st.lists(st.uuids(), max_size=20))
def test_counters_are_locked_once_each_in_the_order_postgresql_sorts_uuids(ids):
    assert lock_order(ids) == sorted(set(ids), key=lambda user_id: user_id.bytes)


def test_typing_is_never_stored_and_has_no_seq():
    with pytest.raises(ValueError):
        PendingEvent(USERS[0], EventType.TYPING, NOW, {})
    with pytest.raises(ValueError):
        UserEvent(1, EventType.TYPING, NOW, {})
    typing = EphemeralEvent(EventType.TYPING, NOW, {"conversation_id": "c"})
    assert "seq" not in typing.envelope()
    with pytest.raises(ValueError):
        EphemeralEvent(EventType.MESSAGE_CREATED, NOW, {})


def test_the_envelope_carries_seq_type_utc_time_and_data():
    paris = timezone(timedelta(hours=1))
    event = UserEvent(17, EventType.CONVERSATION_READ, datetime(2025, 1, 1, 13, 0, 0, 250000, tzinfo=paris), {"a": 1})
    assert event.envelope() == {"seq": 17, "type": "conversation.read", "at": "2025-01-01T12:00:00.250000Z", "data": {"a": 1}}
    with pytest.raises(ValueError):
        UserEvent(1, EventType.MESSAGE_STATUS, datetime(2025, 1, 1), {})
    with pytest.raises(ValueError):
        UserEvent(0, EventType.MESSAGE_STATUS, NOW, {})


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (dict(limit=0), "limit"),
        (dict(limit=MAX_LIMIT + 1), "limit"),
        (dict(timeout=-0.5), "timeout"),
        (dict(timeout=MAX_WAIT_SECONDS + 0.5), "timeout"),
        (dict(since=-1), "since"),
    ],
)
def test_a_query_outside_its_limits_is_refused_naming_the_field(query, field):
    with pytest.raises(InvalidInput) as refused:
        EventQuery(**query)
    assert field in refused.value.field_errors


def test_a_query_at_its_limits_is_accepted():
    EventQuery(since=0, limit=1, timeout=0)
    EventQuery(since=10**15, limit=MAX_LIMIT, timeout=MAX_WAIT_SECONDS)


@pytest.mark.parametrize(
    ("since", "bounds", "expected"),
    [
        (None, LogBounds(oldest=4, last=9), 9),  # start from now
        (12, LogBounds(oldest=4, last=9), 9),  # ahead of the log: back to its end
        (3, LogBounds(oldest=4, last=9), 3),  # everything after 3 is kept
        (9, LogBounds(oldest=4, last=9), 9),
        (0, LogBounds(oldest=None, last=0), 0),  # a new user
        (0, LogBounds(oldest=1, last=5), 0),
        (7, LogBounds(oldest=None, last=7), 7),  # all dropped, but the client had all of it
    ],
)
def test_where_reading_resumes(since, bounds, expected):
    assert resolve_since(since, bounds) == expected


@pytest.mark.parametrize(
    ("since", "bounds"),
    [(2, LogBounds(oldest=4, last=9)), (0, LogBounds(oldest=2, last=9)), (5, LogBounds(oldest=None, last=7))],
)
def test_a_cursor_older_than_what_is_kept_has_expired_and_says_where_to_resume(since, bounds):
    with pytest.raises(CursorExpired) as expired:
        resolve_since(since, bounds)
    assert expired.value.code == "cursor_expired"
    assert expired.value.resume_from == bounds.last


def test_a_page_with_a_gap_is_refused():
    events = [UserEvent(seq, EventType.MESSAGE_CREATED, NOW, {}) for seq in (4, 6)]
    with pytest.raises(CursorExpired):
        require_contiguous(3, events, 6)
    with pytest.raises(CursorExpired):
        require_contiguous(2, events[:1], 6)
    require_contiguous(3, events[:1], 6)
    require_contiguous(3, [], 6)


class Log:
    """A user's log as the rules describe it: numbered from a counter, dropped oldest first."""

    def __init__(self) -> None:
        self.events: list[UserEvent] = []
        self.last = 0

    def append(self, count: int) -> None:
        events = assign_seqs(self.last, [pending(USERS[0], self.last + offset) for offset in range(count)])
        self.events += events
        self.last += count

    def drop_oldest(self, count: int) -> None:
        del self.events[:count]

    def bounds(self) -> LogBounds:
        return LogBounds(self.events[0].seq if self.events else None, self.last)

    def read(self, since: int | None, limit: int) -> tuple[list[UserEvent], int]:
        after = resolve_since(since, self.bounds())
        page = [event for event in self.events if event.seq > after][:limit]
        require_contiguous(after, page, self.last)
        return page, next_cursor(after, page)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 5)),
        st.tuples(st.just("drop"), st.integers(1, 4)),
        st.tuples(st.just("read"), st.integers(1, 6)),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(steps=steps)
def test_a_client_resuming_from_next_sees_every_event_once_in_order_or_is_told_to_resync(steps):
    log, cursor, seen = Log(), 0, []
    for action, amount in steps:
        if action == "append":
            log.append(amount)
        elif action == "drop":
            log.drop_oldest(amount)
        else:
            dropped_unseen = log.events[0].seq > cursor + 1 if log.events else log.last > cursor
            try:
                page, cursor = log.read(cursor, amount)
            except CursorExpired as expired:
                assert dropped_unseen
                seen, cursor = list(range(1, expired.resume_from + 1)), expired.resume_from  # reloaded over REST
                continue
            assert not dropped_unseen
            seen += [event.seq for event in page]
            assert seen == list(range(1, len(seen) + 1))
    page, cursor = log.read(None, MAX_LIMIT)
    assert page == [] and cursor == log.last
