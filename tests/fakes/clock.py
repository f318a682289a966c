"""Deterministic time and ids for tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID

DEFAULT_START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta = timedelta(seconds=1)) -> datetime:
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


class SequentialIds:
    """Version-4-shaped UUIDs numbered 1, 2, 3... so test output is readable and repeatable."""

    def __init__(self, start: int = 1) -> None:
        self._counter = itertools.count(start)

    def new_id(self) -> UUID:
        return UUID(f"00000000-0000-4000-8000-{next(self._counter):012x}")
