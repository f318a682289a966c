"""The in-memory twin of the SQL login failure counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tests.fakes.store import Transaction

Failure = tuple[str, datetime]


class InMemoryLoginAttemptRepository:
    """Writes are kept as operations and replayed on the committed rows at commit, so concurrent
    units of work touching other keys are not overwritten."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._store = tx.store
        self._operations: list[Callable[[list[Failure]], None]] = []
        tx.track(self)

    def _rows(self) -> list[Failure]:
        rows = list(self._store.login_failures)
        for operation in self._operations:
            operation(rows)
        return rows

    async def failures_since(self, key: str, since: datetime) -> tuple[int, datetime | None]:
        await self._tx.lock(("login_attempts", key))
        times = [at for row_key, at in self._rows() if row_key == key and at > since]
        return len(times), min(times, default=None)

    async def record_failure(self, key: str, at: datetime) -> None:
        self._operations.append(lambda rows: rows.append((key, at)))

    async def withdraw(self, key: str, at: datetime) -> None:
        def remove_one(rows: list[Failure]) -> None:
            if (key, at) in rows:
                rows.remove((key, at))

        self._operations.append(remove_one)

    async def clear(self, key: str) -> None:
        self._operations.append(lambda rows: _keep(rows, lambda row: row[0] != key))

    async def purge_before(self, before: datetime) -> int:
        purged = sum(1 for _, at in self._rows() if at < before)
        self._operations.append(lambda rows: _keep(rows, lambda row: row[1] >= before))
        return purged

    def apply(self) -> None:
        for operation in self._operations:
            operation(self._store.login_failures)
        self._operations.clear()

    def discard(self) -> None:
        self._operations.clear()


def _keep(rows: list[Failure], predicate: Callable[[Failure], bool]) -> None:
    rows[:] = [row for row in rows if predicate(row)]
