"""Leaving a group and the counts behind per-user quotas, on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest

from chat4all.adapters.sql.engine import create_engine
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.adapters.system import RandomIds
from chat4all.application.conversations import CreateConversation
from chat4all.application.uploads import InitiateUpload
from chat4all.domain.conversations import ConversationMetadata, ConversationType
from chat4all.domain.errors import QuotaExceeded
from chat4all.domain.quotas import OpenUploads, RecentStarts, UserQuotas
from chat4all.domain.uploads import Upload, UploadStatus
from tests.fakes import InMemoryFileStorage, ManualClock
from tests.integration.sql_records import T0, add_users, at, group, private

pytestmark = pytest.mark.services


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


async def test_open_uploads_count_only_pending_unexpired_ones_of_their_owner(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob = await add_users(uow, "alice", "bob")

    def upload(owner, size: int, status=UploadStatus.PENDING, expires: float = 100) -> Upload:
        return Upload(uuid4(), owner.id, "f.bin", size, "application/octet-stream", 4, status, at(0), at(expires))

    async with uow() as tx:
        assert await tx.uploads.open_for_owner(alice.id, at(0)) == OpenUploads(0, 0)
        for each in (
            upload(alice, 3 * 1024**3),  # BIGINT sums
            upload(alice, 7),
            upload(alice, 50, expires=10),  # expired at 10, not yet swept
            upload(alice, 1, UploadStatus.COMPLETED),
            upload(alice, 1, UploadStatus.EXPIRED),
            upload(bob, 1000),
        ):
            await tx.uploads.add(each)
        await tx.commit()
    async with uow() as tx:
        assert await tx.uploads.open_for_owner(alice.id, at(5)) == OpenUploads(3, 3 * 1024**3 + 57)
        assert await tx.uploads.open_for_owner(alice.id, at(10)) == OpenUploads(2, 3 * 1024**3 + 7)
        assert await tx.uploads.open_for_owner(bob.id, at(10)) == OpenUploads(1, 1000)


async def test_conversations_started_since_count_their_starter_only(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    started = [group([alice, bob, carol]) for _ in range(3)] + [group([bob, alice, carol]), private(alice, bob)]
    for seconds, conversation in enumerate(started):
        conversation.created_at = at(seconds * 10)
    async with uow() as tx:
        for conversation in started:
            await tx.conversations.add(conversation)
        await tx.commit()
    async with uow() as tx:
        assert (await tx.conversations.get(started[0].id)).created_by == alice.id
        assert await tx.conversations.started_since(alice.id, at(-1)) == RecentStarts(4, at(0))
        assert await tx.conversations.started_since(alice.id, at(0)) == RecentStarts(3, at(10))  # strictly after
        assert await tx.conversations.started_since(bob.id, at(-1)) == RecentStarts(1, at(30))
        assert await tx.conversations.started_since(carol.id, at(-1)) == RecentStarts(0, None)


async def test_two_processes_initiating_at_once_cannot_pass_the_upload_quota(database_url: str) -> None:
    """Two engines stand for two API processes; 16 parallel initiations against a quota of 5."""
    engines = [create_engine(database_url), create_engine(database_url)]
    clock = ManualClock(T0)
    try:
        factories = [SqlUnitOfWorkFactory(each) for each in engines]
        (alice,) = await add_users(factories[0], "alice")
        initiations = [
            InitiateUpload(factory, InMemoryFileStorage(), RandomIds(), clock, 4, timedelta(hours=1), UserQuotas(max_open_uploads=5))
            for factory in factories
        ]
        outcomes = await asyncio.gather(
            *(initiations[n % 2].execute(alice.id, "f.bin", 10, None) for n in range(16)), return_exceptions=True
        )
        assert sum(isinstance(outcome, QuotaExceeded) for outcome in outcomes) == 11, outcomes
        async with factories[1]() as tx:
            assert await tx.uploads.open_for_owner(alice.id, clock.now()) == OpenUploads(5, 50)
    finally:
        for each in engines:
            await each.dispose()


async def test_two_processes_starting_at_once_cannot_pass_the_conversation_quota(database_url: str) -> None:
    engines = [create_engine(database_url), create_engine(database_url)]
    clock = ManualClock(T0)
    try:
        factories = [SqlUnitOfWorkFactory(each) for each in engines]
        alice, bob, carol = await add_users(factories[0], "alice", "bob", "carol")
        creates = [CreateConversation(factory, RandomIds(), clock, UserQuotas(max_conversations_per_hour=4)) for factory in factories]
        members = [alice.id, bob.id, carol.id]
        outcomes = await asyncio.gather(
            *(
                creates[n % 2].execute(caller=alice.id, type=ConversationType.GROUP, members=members, metadata=ConversationMetadata())
                for n in range(12)
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(outcome, QuotaExceeded) for outcome in outcomes) == 8, outcomes
        async with factories[1]() as tx:
            assert (await tx.conversations.started_since(alice.id, T0 - timedelta(hours=1))).count == 4
    finally:
        for each in engines:
            await each.dispose()
