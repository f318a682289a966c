"""Long-running loops an API or worker process keeps alive next to its main job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class WakeSignal:
    """Implements the OutboxSignal port: a poke that ends the relay's idle wait early."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Waits for a poke (True) or `timeout` seconds (False)."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
            poked = True
        except TimeoutError:
            poked = False
        self._event.clear()
        return poked

    def clear(self) -> None:
        self._event.clear()


async def relay_forever(
    relay_once: Callable[[], Awaitable[int]],
    signal: WakeSignal,
    *,
    full_batch: int,
    idle_poll: float = 0.5,
    linger: float = 0.0,
) -> None:
    """Relays until a round finds less than a full batch, then waits for a send's signal (or
    `idle_poll`, for events committed by other processes). A signal that came during the round
    ends the wait at once, so nothing committed meanwhile waits for the poll.

    After a signal the relay lingers `linger` seconds before its round. Each round costs a
    transaction, a produce request, and a fetch and a batch on the worker, whatever it carries;
    without the linger, moderate load (sends a few milliseconds apart) makes a round per message."""
    failures = 0
    while True:
        try:
            relayed = await relay_once()
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as error:  # broker or database away: keep the events and try again later
            failures += 1
            delay = min(0.1 * 2**failures, 5.0)
            log.warning("outbox relay failed (%s); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            continue
        if relayed < full_batch and await signal.wait(idle_poll) and linger:
            await asyncio.sleep(linger)
            # Sends that woke it meanwhile committed before the round starts, so it takes their
            # events: their pokes would only make an empty round.
            signal.clear()


async def every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic job %s failed", name)


class BackgroundTasks:
    def __init__(self) -> None:
        self._factories: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self._factories.append((name, factory))

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(factory(), name=name) for name, factory in self._factories]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
