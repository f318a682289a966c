"""Login failure counting on real SQLite and PostgreSQL, shared by every API process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chat4all.adapters.sql.engine import create_engine
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.auth import Authenticate, LoginThrottle, RegisterUser
from chat4all.domain.errors import NotAuthenticated, Throttled
from tests.fakes import ManualClock, PlainTestHasher, PredictableTokenIssuer, SequentialIds

pytestmark = pytest.mark.services

T0 = datetime(2024, 12, 2, 9, 0, 0, 250000, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_count_record_withdraw_clear_and_purge(uow: SqlUnitOfWorkFactory) -> None:
    async with uow() as tx:
        assert await tx.login_attempts.failures_since("user:alice", at(-900)) == (0, None)
        for seconds in (0, 10, 10, 20):
            await tx.login_attempts.record_failure("user:alice", at(seconds))
        await tx.login_attempts.record_failure("addr:192.0.2.1", at(5))
        await tx.commit()
    async with uow() as tx:
        assert await tx.login_attempts.failures_since("user:alice", at(-1)) == (4, at(0))
        assert await tx.login_attempts.failures_since("user:alice", at(0)) == (3, at(10))  # strictly after
        assert await tx.login_attempts.failures_since("user:bob", at(-1)) == (0, None)
        await tx.login_attempts.withdraw("user:alice", at(10))  # just one of the two
        await tx.commit()
    async with uow() as tx:
        assert await tx.login_attempts.failures_since("user:alice", at(-1)) == (3, at(0))
        await tx.login_attempts.clear("user:alice")
        await tx.commit()
    async with uow() as tx:
        assert await tx.login_attempts.failures_since("user:alice", at(-1)) == (0, None)
        assert await tx.login_attempts.failures_since("addr:192.0.2.1", at(-1)) == (1, at(5))
        assert await tx.login_attempts.purge_before(at(6)) == 1
        await tx.commit()
    async with uow() as tx:
        assert await tx.login_attempts.failures_since("addr:192.0.2.1", at(-1)) == (0, None)


async def test_rolled_back_failures_do_not_count(uow: SqlUnitOfWorkFactory) -> None:
    async with uow() as tx:
        await tx.login_attempts.record_failure("user:alice", at(0))
    async with uow() as tx:
        assert await tx.login_attempts.failures_since("user:alice", at(-1)) == (0, None)


async def test_two_processes_share_the_limit_and_parallel_guesses_cannot_pass_it(database_url: str) -> None:
    """Two engines stand for two API processes; 24 parallel wrong logins against a limit of 4."""
    engines = [create_engine(database_url), create_engine(database_url)]
    clock = ManualClock(T0)
    try:
        factories = [SqlUnitOfWorkFactory(each) for each in engines]
        await RegisterUser(factories[0], PlainTestHasher(), SequentialIds(), clock).execute("alice", "a long password")

        class SlowHasher(PlainTestHasher):
            async def verify(self, password_hash: str, password: str) -> bool:
                await asyncio.sleep(0.02)
                return await super().verify(password_hash, password)

        throttle = LoginThrottle(max_failures_per_user=4, max_failures_per_address=100, window=timedelta(minutes=15))
        logins = [
            Authenticate(factory, SlowHasher(), PredictableTokenIssuer(), clock, timedelta(hours=1), throttle)
            for factory in factories
        ]
        outcomes = await asyncio.gather(
            *(logins[n % 2].execute("alice", "wrong password", f"192.0.2.{n}") for n in range(24)), return_exceptions=True
        )
        assert sum(isinstance(outcome, NotAuthenticated) for outcome in outcomes) == 4
        assert sum(isinstance(outcome, Throttled) for outcome in outcomes) == 20
        with pytest.raises(Throttled):
            await logins[0].execute("alice", "a long password", "192.0.2.200")
        clock.advance(timedelta(minutes=15))
        assert (await logins[1].execute("alice", "a long password", "192.0.2.200")).access_token
    finally:
        for each in engines:
            await each.dispose()
