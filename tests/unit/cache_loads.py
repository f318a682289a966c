"""What the expiring cache tests share: the time they start at, and a load that waits to be released."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class GatedLoad:
    """A load that counts its calls and finishes only once `release` is set: it then runs `then`
    (e.g. the `put` a real loader does) and returns `value`."""

    def __init__(self, value: int, then: Callable[[], None] = lambda: None) -> None:
        self.value = value
        self.then = then
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        self.then()
        return self.value


REFRESH_AT = NOW + timedelta(seconds=3)


UNTIL = NOW + timedelta(seconds=5)
