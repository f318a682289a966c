"""Leaving a group and the counts behind per-user quotas, on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from tests.integration.sql_fixtures import (  # noqa: F401 - fixtures
    backend,
    database_url,
    engine,
    postgres_url,
    sqlite_template,
)
from tests.integration.test_sql_repositories import add_users, group, private

pytestmark = pytest.mark.services


@pytest.fixture
def uow(engine: AsyncEngine) -> SqlUnitOfWorkFactory:  # noqa: F811
    return SqlUnitOfWorkFactory(engine)


async def test_a_member_removed_is_gone_from_the_group_and_its_listings(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol, dave = await add_users(uow, "alice", "bob", "carol", "dave")
    team, pair = group([alice, bob, carol, dave]), private(alice, bob)
    async with uow() as tx:
        await tx.conversations.add(team)
        await tx.conversations.add(pair)
        await tx.commit()
    # Two members leaving at once: each removal stands.
    async def leave(user_id):
        async with uow() as tx:
            await tx.conversations.remove_member(team.id, user_id)
            await tx.commit()

    await asyncio.gather(leave(bob.id), leave(dave.id))
    async with uow() as tx:
        await tx.conversations.remove_member(team.id, uuid4())  # not a member: nothing happens
        await tx.commit()
    async with uow() as tx:
        loaded = await tx.conversations.get(team.id)
        assert loaded is not None and loaded.members == (alice.id, carol.id)
        assert (await tx.conversations.get_many([team.id]))[team.id].members == (alice.id, carol.id)
        page, total = await tx.conversations.list_for_member(bob.id, limit=10, offset=0)
        assert total == 1 and [each.id for each in page] == [pair.id]
    async with uow() as tx:
        await tx.conversations.remove_member(team.id, alice.id)
        await tx.conversations.remove_member(team.id, carol.id)
        await tx.commit()
    async with uow() as tx:
        emptied = await tx.conversations.get(team.id)
        assert emptied is not None and emptied.members == ()
