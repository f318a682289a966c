from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select

from chat4all.adapters.sql.base import SqlRepository
from chat4all.adapters.sql.tables import login_failures


class SqlLoginAttemptRepository(SqlRepository):
    async def failures_since(self, key: str, since: datetime) -> tuple[int, datetime | None]:
        # Logins for the same key count and record in turn.
        await self._lock_until_commit("login-throttle:" + key)
        row = (
            await self._execute(
                select(func.count(), func.min(login_failures.c.failed_at)).where(
                    login_failures.c.key == key, login_failures.c.failed_at > since
                )
            )
        ).one()
        return int(row[0]), row[1]

    async def record_failure(self, key: str, at: datetime) -> None:
        await self._execute(insert(login_failures).values(key=key, failed_at=at))

    async def withdraw(self, key: str, at: datetime) -> None:
        one = (
            select(login_failures.c.id)
            .where(login_failures.c.key == key, login_failures.c.failed_at == at)
            .limit(1)
            .scalar_subquery()
        )
        await self._execute(delete(login_failures).where(login_failures.c.id == one))

    async def clear(self, key: str) -> None:
        await self._execute(delete(login_failures).where(login_failures.c.key == key))

    async def purge_before(self, before: datetime) -> int:
        result = await self._execute(delete(login_failures).where(login_failures.c.failed_at < before))
        return result.rowcount or 0
