"""Lookups of single keys made together: one bulk read for the keys asked in one turn.

A process that has just started (or whose cache entries ended together) gets a request per
client for things it has not cached yet: 1,000 clients' tokens, 500 conversations. Looked up one
by one, each is a transaction of its own (a connection, BEGIN, two statements, the end), at the
very moment the process is busiest. `BatchedLoads` gathers the keys asked for in the same turn of
the event loop into one `load_many`, and hands each caller its own key's value; while
`in_flight` batches are being read, new keys wait and go together in the next one, so the busier
the process, the fewer reads per key (`log_reads.SharedLogReads` batches users' logs with it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

MAX_KEYS_PER_LOAD = 500
IN_FLIGHT = 2


class BatchedLoads(Generic[Key, Value]):
    """`load(key)`: the value `load_many` finds for `key`, or None when it finds none."""

    def __init__(
        self,
        load_many: Callable[[list[Key]], Awaitable[Mapping[Key, Value]]],
        *,
        in_flight: int = IN_FLIGHT,
        max_keys: int = MAX_KEYS_PER_LOAD,
    ) -> None:
        self._load_many = load_many
        self._in_flight_max = in_flight
        self._max_keys = max_keys
        self._in_flight = 0
        self._waiting: dict[Key, asyncio.Future[Value | None]] = {}
        self._flush_planned = False
        self._callers: dict[asyncio.Future[Value | None], int] = {}  # how many wait for each value
        self._reading: dict[asyncio.Future[Value | None], asyncio.Task[None]] = {}  # the read of each

    async def load(self, key: Key) -> Value | None:
        found = self._waiting.get(key)
        if found is None:
            found = self._waiting[key] = asyncio.get_running_loop().create_future()
            found.add_done_callback(_consume)
            self._plan_flush()
        self._callers[found] = self._callers.get(found, 0) + 1
        try:
            # Shielded: a caller that stops waiting (its client left) leaves the value to the others.
            return await asyncio.shield(found)
        finally:
            await self._left(key, found)

    async def _left(self, key: Key, found: asyncio.Future[Value | None]) -> None:
        """A read that nobody waits for any more is dropped, or cancelled and waited for (a process
        that stops cancels its lookups, then closes the database they would still be using)."""
        self._callers[found] -= 1
        if self._callers[found] or found.done():
            if not self._callers[found]:
                del self._callers[found]
            return
        del self._callers[found]
        if self._waiting.get(key) is found:
            del self._waiting[key]
            found.cancel()
            return
        read = self._reading.get(found)
        if read is not None and not any(self._callers.get(other) for other, task in self._reading.items() if task is read):
            read.cancel()
            await asyncio.gather(read, return_exceptions=True)

    def _plan_flush(self) -> None:
        if not self._flush_planned and self._in_flight < self._in_flight_max:
            self._flush_planned = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_planned = False
        while self._waiting and self._in_flight < self._in_flight_max:
            taken = dict(list(self._waiting.items())[: self._max_keys])
            for key in taken:
                del self._waiting[key]
            self._in_flight += 1
            read = asyncio.get_running_loop().create_task(self._read(taken), name="batched-load")
            self._reading.update(dict.fromkeys(taken.values(), read))

    async def _read(self, waiting: dict[Key, asyncio.Future[Value | None]]) -> None:
        try:
            found = await self._load_many(list(waiting))
        except Exception as error:  # every caller of the batch sees the failure, as it would alone
            for future in waiting.values():
                if not future.done():
                    future.set_exception(error)
        else:
            for key, future in waiting.items():
                if not future.done():
                    future.set_result(found.get(key))
        finally:
            for future in waiting.values():  # cancelled (the process is stopping): nobody waits forever
                future.cancel()
                self._reading.pop(future, None)
            self._in_flight -= 1
            if self._waiting:
                self._plan_flush()


def _consume(future: asyncio.Future[object]) -> None:
    """Marks a failure as seen even when every caller of the key has stopped waiting for it."""
    if not future.cancelled():
        with contextlib.suppress(Exception):
            future.exception()
