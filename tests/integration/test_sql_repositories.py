"""The SQL repositories against real SQLite and PostgreSQL: users, tokens, conversations, file shares
and uploads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.errors import DuplicateKey
from chat4all.domain.conversations import ConversationMetadata, ConversationType, private_pair_key
from chat4all.domain.uploads import Upload, UploadStatus
from chat4all.domain.users import AccessToken, User
from tests.integration.sql_records import add_users, at, group, private

pytestmark = pytest.mark.services


async def test_users_round_trip_list_and_unique_username(uow: SqlUnitOfWorkFactory) -> None:
    carol, alice, bob = await add_users(uow, "carol", "alice", "bob")
    async with uow() as tx:
        loaded = await tx.users.get(alice.id)
        assert loaded is not None
        assert (loaded.id, loaded.username, loaded.password_hash, loaded.created_at) == (
            alice.id,
            "alice",
            "hash-of-alice",
            alice.created_at,
        )
        assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset() == timedelta(0)
        assert (await tx.users.get_by_username("bob")) == bob
        assert await tx.users.get_by_username("nobody") is None
        assert await tx.users.get(uuid4()) is None
        assert await tx.users.existing_ids([alice.id, uuid4(), carol.id]) == {alice.id, carol.id}
        assert await tx.users.existing_ids([]) == set()
        assert [u.username for u in await tx.users.list(username=None, limit=10, offset=0)] == ["alice", "bob", "carol"]
        assert [u.username for u in await tx.users.list(username=None, limit=2, offset=1)] == ["bob", "carol"]
        assert await tx.users.list(username="carol", limit=10, offset=0) == [carol]
        assert await tx.users.list(username="car", limit=10, offset=0) == []

    async with uow() as tx:
        with pytest.raises(DuplicateKey):
            await tx.users.add(User(uuid4(), "alice", "other", at(9)))
    async with uow() as tx:
        assert len(await tx.users.list(username="alice", limit=10, offset=0)) == 1


async def test_tokens_and_revocation(uow: SqlUnitOfWorkFactory) -> None:
    (alice,) = await add_users(uow, "alice")
    token = AccessToken("digest-1", alice.id, at(0), at(3600))
    async with uow() as tx:
        await tx.tokens.add(token)
        await tx.commit()
    async with uow() as tx:
        assert await tx.tokens.get("digest-1") == token
        assert await tx.tokens.get("digest-2") is None
        await tx.tokens.revoke("digest-1", at(10))
        await tx.tokens.revoke("no-such-token", at(10))
        await tx.commit()
    async with uow() as tx:
        await tx.tokens.revoke("digest-1", at(20))  # revoking again keeps the first time
        await tx.commit()
    async with uow() as tx:
        revoked = await tx.tokens.get("digest-1")
    assert revoked is not None and revoked.revoked_at == at(10)
    assert not revoked.is_valid_at(at(11))


async def test_which_tokens_are_still_valid_in_one_query(uow: SqlUnitOfWorkFactory) -> None:
    (alice,) = await add_users(uow, "alice")
    async with uow() as tx:
        for digest, expires in (("live", 3600), ("revoked", 3600), ("expiring", 100)):
            await tx.tokens.add(AccessToken(digest, alice.id, at(0), at(expires)))
        await tx.tokens.revoke("revoked", at(10))
        await tx.commit()
    async with uow() as tx:
        assert await tx.tokens.valid_among(["live", "revoked", "expiring", "unknown"], at(50)) == {"live", "expiring"}
        assert await tx.tokens.valid_among(["live", "expiring"], at(100)) == {"live"}  # not at the expiry instant
        assert await tx.tokens.valid_among([], at(0)) == set()
        assert await tx.tokens.expiries_among(["live", "revoked", "expiring", "unknown"], at(50)) == {
            "live": at(3600), "expiring": at(100)
        }
        assert await tx.tokens.expiries_among([], at(0)) == {}


async def test_conversations_members_private_lookup_and_listing(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol, dave = await add_users(uow, "alice", "bob", "carol", "dave")
    old = group([carol, alice, bob], name="old", last_activity=10)
    new = group([alice, bob, dave], name="new", last_activity=30)
    pair = private(bob, alice)
    pair.last_activity_at = at(20)
    async with uow() as tx:
        for conversation in (old, new, pair):
            await tx.conversations.add(conversation)
        await tx.commit()

    async with uow() as tx:
        loaded = await tx.conversations.get(old.id)
        assert loaded is not None
        assert loaded.members == (carol.id, alice.id, bob.id)  # creation order kept
        assert loaded.type is ConversationType.GROUP
        assert loaded.metadata == ConversationMetadata(name="old", description="a group")
        assert (loaded.created_at, loaded.last_activity_at) == (at(0), at(10))
        assert await tx.conversations.get(uuid4()) is None

        found = await tx.conversations.get_private(private_pair_key([alice.id, bob.id]))
        assert found is not None and found.id == pair.id and found.private_key == pair.private_key
        assert found.metadata == ConversationMetadata()
        assert await tx.conversations.get_private(private_pair_key([alice.id, carol.id])) is None

        page, total = await tx.conversations.list_for_member(alice.id, limit=10, offset=0)
        assert total == 3 and [c.id for c in page] == [new.id, pair.id, old.id]
        assert page[0].members == (alice.id, bob.id, dave.id)
        page, total = await tx.conversations.list_for_member(alice.id, limit=1, offset=1)
        assert total == 3 and [c.id for c in page] == [pair.id]
        page, total = await tx.conversations.list_for_member(dave.id, limit=10, offset=0)
        assert (total, [c.id for c in page]) == (1, [new.id])
        assert await tx.conversations.list_for_member(uuid4(), limit=10, offset=0) == ([], 0)

        await tx.conversations.touch(old.id, at(40))
        await tx.conversations.touch(new.id, at(5))  # never moves backwards
        await tx.commit()

    async with uow() as tx:
        page, _ = await tx.conversations.list_for_member(alice.id, limit=10, offset=0)
        assert [c.id for c in page] == [old.id, new.id, pair.id]
        assert page[1].last_activity_at == at(30)

    async with uow() as tx:
        with pytest.raises(DuplicateKey):
            await tx.conversations.add(private(alice, bob))


async def test_file_shares(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol, dave = await add_users(uow, "alice", "bob", "carol", "dave")
    conversation = group([alice, bob, carol])
    upload = Upload(uuid4(), alice.id, "a.txt", 10, "text/plain", 4, UploadStatus.COMPLETED, at(0), at(60))
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.uploads.add(upload)
        await tx.conversations.record_file_share(upload.id, conversation.id)
        await tx.conversations.record_file_share(upload.id, conversation.id)  # sending it again is fine
        await tx.commit()
    async with uow() as tx:
        assert await tx.conversations.shares_file(upload.id, bob.id)
        assert not await tx.conversations.shares_file(upload.id, dave.id)
        assert not await tx.conversations.shares_file(uuid4(), bob.id)


async def test_uploads_chunks_update_and_expiry(uow: SqlUnitOfWorkFactory) -> None:
    (alice,) = await add_users(uow, "alice")
    upload = Upload(uuid4(), alice.id, "big.bin", 10, "application/octet-stream", 4, UploadStatus.PENDING, at(0), at(100))
    stale = Upload(uuid4(), alice.id, "old.bin", 4, "text/plain", 4, UploadStatus.PENDING, at(0), at(50))
    done = Upload(uuid4(), alice.id, "done.bin", 4, "text/plain", 4, UploadStatus.COMPLETED, at(0), at(10), checksum="c" * 64)
    async with uow() as tx:
        for item in (upload, stale, done):
            await tx.uploads.add(item)
        await tx.commit()

    async with uow() as tx:
        loaded = await tx.uploads.get(upload.id, for_update=True)
        assert loaded is not None
        assert (loaded.filename, loaded.file_size, loaded.chunk_size, loaded.status) == ("big.bin", 10, 4, UploadStatus.PENDING)
        assert (loaded.created_at, loaded.expires_at, loaded.checksum, loaded.completed_at) == (at(0), at(100), None, None)
        assert loaded.received_chunks == set()
        await tx.uploads.add_chunk(upload.id, 2)
        await tx.uploads.add_chunk(upload.id, 0)
        await tx.uploads.add_chunk(upload.id, 2)  # a re-sent chunk
        await tx.commit()
        assert await tx.uploads.get(uuid4()) is None

    async with uow() as tx:
        loaded = await tx.uploads.get(upload.id)
        assert loaded is not None and loaded.missing_chunks() == [1]
        expiring = await tx.uploads.expired_before(at(100), 10)
        assert [u.id for u in expiring] == [stale.id, upload.id]
        assert expiring[1].received_chunks == {0, 2}
        assert [u.id for u in await tx.uploads.expired_before(at(99), 10)] == [stale.id]
        assert [u.id for u in await tx.uploads.expired_before(at(1000), 1)] == [stale.id]

        loaded.received_chunks = set(range(loaded.total_chunks))
        loaded.complete("d" * 64, at(60))
        await tx.uploads.update(loaded)
        stale_loaded = await tx.uploads.get(stale.id)
        assert stale_loaded is not None
        stale_loaded.expire()
        await tx.uploads.update(stale_loaded)
        await tx.commit()

    async with uow() as tx:
        completed = await tx.uploads.get(upload.id)
        expired = await tx.uploads.get(stale.id)
        assert await tx.uploads.expired_before(at(1000), 10) == []
    assert completed is not None and expired is not None
    assert (completed.status, completed.checksum, completed.completed_at) == (UploadStatus.COMPLETED, "d" * 64, at(60))
    assert completed.received_chunks == {0, 1, 2}
    assert expired.status is UploadStatus.EXPIRED


async def test_timestamps_are_stored_as_utc_and_naive_ones_are_refused(uow: SqlUnitOfWorkFactory) -> None:
    plus_two = timezone(timedelta(hours=2))
    user = User(uuid4(), "zoned", "hash", datetime(2024, 1, 1, 14, 0, tzinfo=plus_two))
    async with uow() as tx:
        await tx.users.add(user)
        await tx.commit()
    async with uow() as tx:
        loaded = await tx.users.get(user.id)
        assert loaded is not None
        assert loaded.created_at == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
        assert loaded.created_at.utcoffset() == timedelta(0)
        with pytest.raises(Exception, match="naive datetime"):
            await tx.users.add(User(uuid4(), "naive", "hash", datetime(2024, 1, 1)))
