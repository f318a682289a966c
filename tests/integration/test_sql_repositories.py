"""The SQL adapter against real SQLite and PostgreSQL: every repository, the unit of work and the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.engine import check, create_engine
from chat4all.adapters.sql.outbox import SqlOutboxReader
from chat4all.adapters.sql.postgres.connections import direct_pool
from chat4all.adapters.sql.postgres.outbox import PostgresOutboxReader
from chat4all.adapters.sql.tables import message_events, messages, outbox
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory
from chat4all.application.errors import DuplicateKey, DuplicateMessage
from chat4all.application.ports import OutboxEvent, OutboxReader
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType, private_pair_key
from chat4all.domain.errors import Unavailable
from chat4all.domain.messages import (
    DeliveryStatus,
    FilePayload,
    Message,
    MessageDraft,
    MessageStatus,
    Priority,
    StatusEvent,
    TextPayload,
)
from chat4all.domain.uploads import Upload, UploadStatus
from chat4all.domain.users import AccessToken, User

pytestmark = pytest.mark.services

T0 = datetime(2024, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def add_users(uow_factory: SqlUnitOfWorkFactory, *names: str) -> list[User]:
    users = [User(uuid4(), name, f"hash-of-{name}", at(index)) for index, name in enumerate(names)]
    async with uow_factory() as uow:
        for user in users:
            await uow.users.add(user)
        await uow.commit()
    return users


def group(members: Sequence[User], *, name: str = "team", last_activity: float = 0) -> Conversation:
    conversation = Conversation.start(
        conversation_id=uuid4(),
        type=ConversationType.GROUP,
        members=[member.id for member in members],
        creator=members[0].id,
        metadata=ConversationMetadata(name=name, description="a group"),
        now=at(0),
    )
    conversation.last_activity_at = at(last_activity)
    return conversation


def private(a: User, b: User) -> Conversation:
    return Conversation.start(
        conversation_id=uuid4(),
        type=ConversationType.PRIVATE,
        members=[a.id, b.id],
        creator=a.id,
        metadata=ConversationMetadata(),
        now=at(0),
    )


def text_message(
    conversation: Conversation, sender: User, text: str, *, seconds: float = 1, channels=("whatsapp", "instagram")
) -> Message:
    draft = MessageDraft(uuid4(), conversation.id, sender.id, None, tuple(channels), TextPayload(text), Priority.NORMAL)
    return Message.accept(draft, at(seconds))


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


async def test_message_add_get_update_with_deliveries_and_history(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    message = text_message(conversation, alice, "hello")
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.messages.add(message, 1)
        await tx.commit()
    assert message.new_events == []

    async with uow() as tx:
        loaded = await tx.messages.get(message.id, for_update=True)
        assert loaded is not None
        assert loaded.status is MessageStatus.ACCEPTED
        assert loaded.channels == ("whatsapp", "instagram")
        assert loaded.payload == TextPayload("hello")
        assert loaded.priority is Priority.NORMAL
        assert loaded.fingerprint == message.fingerprint
        assert loaded.created_at == at(1)
        assert list(loaded.deliveries.items()) == [("whatsapp", DeliveryStatus.PENDING), ("instagram", DeliveryStatus.PENDING)]
        assert loaded.history == [StatusEvent("accepted", at(1))]
        assert loaded.new_events == []
        assert loaded.mark_routed(at(2))
        assert loaded.record_delivery("instagram", delivered=False, now=at(3), detail="blocked")
        await tx.messages.update_many([loaded])
        assert loaded.new_events == []
        await tx.commit()

    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
        assert loaded is not None
        assert loaded.status is MessageStatus.ROUTED
        assert loaded.deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.FAILED}
        assert loaded.record_delivery("whatsapp", delivered=True, now=at(4))
        await tx.messages.update_many([loaded])
        await tx.commit()

    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
        assert await tx.messages.get(uuid4()) is None
    assert loaded is not None
    assert loaded.status is MessageStatus.FAILED
    assert loaded.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.FAILED}
    assert loaded.history == [
        StatusEvent("accepted", at(1)),
        StatusEvent("routed", at(2), detail="whatsapp, instagram"),
        StatusEvent("failed", at(3), channel="instagram", detail="blocked"),
        StatusEvent("delivered", at(4), channel="whatsapp"),
        StatusEvent("failed", at(4), detail="failed on: instagram"),
    ]
    assert all(event.at.tzinfo is not None for event in loaded.history)


async def test_file_payload_and_recipient_round_trip(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    upload = Upload(uuid4(), alice.id, "photo.png", 3_000_000_000 // 2, "image/png", 4, UploadStatus.COMPLETED, at(0), at(60))
    payload = FilePayload(upload.id, upload.filename, upload.file_size, "image/png", "ab" * 32)
    draft = MessageDraft(uuid4(), conversation.id, alice.id, bob.id, ("whatsapp",), payload, Priority.HIGH)
    message = Message.accept(draft, at(1))
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.uploads.add(upload)
        await tx.messages.add(message, 1)
        await tx.commit()
    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
    assert loaded is not None
    assert loaded.payload == payload
    assert (loaded.recipient_id, loaded.priority) == (bob.id, Priority.HIGH)


async def test_list_for_conversation_is_chronological_with_totals(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation, other = group([alice, bob, carol]), group([alice, bob, carol], name="other")
    sent = [text_message(conversation, alice, f"m{index}", seconds=10 - index) for index in range(7)]
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.conversations.add(other)
        await tx.messages.add(text_message(other, bob, "elsewhere"), 1)
        for position, message in enumerate(sent[:4], 1):
            await tx.messages.add(message, position)
        await tx.commit()
    async with uow() as tx:  # later transactions keep sorting after earlier ones
        for position, message in enumerate(sent[4:], 5):
            await tx.messages.add(message, position)
        routed = await tx.messages.get(sent[2].id)
        assert routed is not None and routed.record_delivery("whatsapp", delivered=True, now=at(20))
        await tx.messages.update_many([routed])
        await tx.commit()

    async with uow() as tx:
        page, total = await tx.messages.list_for_conversation(conversation.id, limit=100, offset=0)
        assert total == 7
        assert [m.payload.text for m in page] == [f"m{index}" for index in range(7)]  # type: ignore[union-attr]
        assert page[2].deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.PENDING}
        assert page[2].status is MessageStatus.ROUTED
        assert page[0].deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.PENDING}
        page, total = await tx.messages.list_for_conversation(conversation.id, limit=3, offset=3)
        assert total == 7 and [m.id for m in page] == [m.id for m in sent[3:6]]
        page, total = await tx.messages.list_for_conversation(conversation.id, limit=3, offset=7)
        assert (page, total) == ([], 7)
        assert await tx.messages.list_for_conversation(uuid4(), limit=3, offset=0) == ([], 0)


async def test_unfinished_messages_page_by_acceptance_time_then_id(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob = await add_users(uow, "alice", "bob")
    conversation = private(alice, bob)
    # Four share an acceptance time (a page boundary falls among them); one is finished; one is too recent.
    sent = [text_message(conversation, alice, f"m{index}", seconds=1 if index < 4 else index) for index in range(7)]
    async with uow() as tx:
        await tx.conversations.add(conversation)
        for position, message in enumerate(sent, 1):
            await tx.messages.add(message, position)
        await tx.commit()
    async with uow() as tx:
        finished = await tx.messages.get(sent[4].id)
        assert finished is not None
        assert finished.record_delivery("whatsapp", delivered=True, now=at(9))
        assert finished.record_delivery("instagram", delivered=True, now=at(9))
        await tx.messages.update_many([finished])
        await tx.commit()

    pages, after = [], None
    while True:
        async with uow() as tx:
            page = await tx.messages.unfinished_before(at(6), 2, after=after)
        pages.append([message.id for message in page])
        if len(page) < 2:
            break
        after = (page[-1].created_at, page[-1].id)

    expected = sorted([*sent[:4], sent[5]], key=lambda message: (message.created_at, message.id))
    assert [message_id for page in pages for message_id in page] == [message.id for message in expected]
    assert [len(page) for page in pages] == [2, 2, 1]


async def test_second_add_of_the_same_message_id_raises_duplicate_message(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    message = text_message(conversation, alice, "once")
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.messages.add(message, 1)
        await tx.commit()
    copy = text_message(conversation, bob, "twice")
    copy.id = message.id
    async with uow() as tx:
        with pytest.raises(DuplicateMessage):
            await tx.messages.add(copy, 2)
    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
    assert loaded is not None and loaded.payload == TextPayload("once") and len(loaded.history) == 1


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


async def test_leaving_without_commit_rolls_back(uow: SqlUnitOfWorkFactory) -> None:
    async with uow() as tx:
        await tx.users.add(User(uuid4(), "ghost", "hash", at(0)))
        await tx.outbox.add("topic", "key", {"n": 1})
    with pytest.raises(RuntimeError, match="boom"):
        async with uow() as tx:
            await tx.users.add(User(uuid4(), "ghost2", "hash", at(0)))
            raise RuntimeError("boom")
    async with uow() as tx:
        assert await tx.users.list(username=None, limit=10, offset=0) == []
    assert await count_rows(uow.engine, outbox) == 0


async def count_rows(db: AsyncEngine, table) -> int:  # type: ignore[no-untyped-def]
    async with db.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(table))).scalar_one()


class RecordingPublisher:
    def __init__(self, *, fail: bool = False, delay: float = 0.0) -> None:
        self.batches: list[list[OutboxEvent]] = []
        self.fail = fail
        self.delay = delay

    async def publish(self, topic: str, key: str, payload: dict) -> None:
        await self.publish_batch([OutboxEvent(topic, key, payload)])

    async def publish_batch(self, events: Sequence[OutboxEvent]) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("broker down")
        self.batches.append(list(events))

    @property
    def events(self) -> list[OutboxEvent]:
        return [event for batch in self.batches for event in batch]


async def fill_outbox(uow: SqlUnitOfWorkFactory, count: int, *, per_transaction: int = 5) -> None:
    for start in range(0, count, per_transaction):
        async with uow() as tx:
            for n in range(start, min(start + per_transaction, count)):
                await tx.outbox.add("message_processing", f"key-{n % 3}", {"n": n, "nested": {"ok": True}})
            await tx.commit()


@pytest.fixture
async def outbox_readers(backend: str, database_url: str, uow: SqlUnitOfWorkFactory) -> AsyncIterator[list[OutboxReader]]:
    """Every relay implementation of the backend: SQLAlchemy's, and on PostgreSQL the direct one."""
    readers: list[OutboxReader] = [SqlOutboxReader(uow.engine)]
    if backend != "postgresql":
        yield readers
        return
    pool = direct_pool(database_url, max_connections=4)
    await pool.open()
    try:
        yield [*readers, PostgresOutboxReader(pool)]
    finally:
        await pool.close()


async def test_outbox_relay_publishes_in_order_and_deletes(uow: SqlUnitOfWorkFactory, outbox_readers: list[OutboxReader]) -> None:
    for reader in outbox_readers:
        await fill_outbox(uow, 12)
        publisher = RecordingPublisher()
        assert await reader.backlog() == 12
        assert await reader.relay_batch(publisher, 5) == 5
        assert await reader.relay_batch(publisher, 100) == 7
        assert await reader.relay_batch(publisher, 100) == 0
        assert [len(batch) for batch in publisher.batches] == [5, 7]
        assert [event.payload["n"] for event in publisher.events] == list(range(12))
        assert publisher.events[4] == OutboxEvent("message_processing", "key-1", {"n": 4, "nested": {"ok": True}})
        assert await count_rows(uow.engine, outbox) == 0


async def test_a_failing_publisher_leaves_the_rows(uow: SqlUnitOfWorkFactory, outbox_readers: list[OutboxReader]) -> None:
    for reader in outbox_readers:
        await fill_outbox(uow, 3)
        with pytest.raises(ConnectionError, match="broker down"):
            await reader.relay_batch(RecordingPublisher(fail=True), 10)
        assert await count_rows(uow.engine, outbox) == 3
        publisher = RecordingPublisher()
        assert await reader.relay_batch(publisher, 10) == 3
        assert [event.payload["n"] for event in publisher.events] == [0, 1, 2]


async def test_concurrent_relays_publish_every_row_exactly_once(
    uow: SqlUnitOfWorkFactory, backend: str, outbox_readers: list[OutboxReader]
) -> None:
    for reader in outbox_readers:
        await fill_outbox(uow, 60, per_transaction=20)
        publishers = [RecordingPublisher(delay=0.02) for _ in range(3)]

        async def drain(publisher: RecordingPublisher, reader: OutboxReader = reader) -> None:
            while await reader.relay_batch(publisher, 7):
                pass

        await asyncio.gather(*(drain(publisher) for publisher in publishers))
        published = [event.payload["n"] for publisher in publishers for event in publisher.events]
        assert sorted(published) == list(range(60))
        if backend == "postgresql":  # SKIP LOCKED lets the relays work side by side
            assert sum(1 for publisher in publishers if publisher.events) >= 2
        for publisher in publishers:  # each relay still sees its own rows in commit order
            numbers = [event.payload["n"] for event in publisher.events]
            assert numbers == sorted(numbers)
        assert await count_rows(uow.engine, outbox) == 0


async def test_message_events_are_appended_not_rewritten(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    message = text_message(conversation, alice, "hi", channels=("whatsapp",))
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.messages.add(message, 1)
        await tx.messages.update_many([message])  # nothing new: no extra rows
        await tx.commit()
    assert await count_rows(uow.engine, message_events) == 1
    assert await count_rows(uow.engine, messages) == 1


async def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    db = create_engine(f"sqlite+aiosqlite:///{tmp_path}")  # a directory, not a database file
    try:
        with pytest.raises(Unavailable):
            async with SqlUnitOfWork(db):
                pass
    finally:
        await db.dispose()


async def test_unreachable_database_is_unavailable() -> None:
    db = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_timeout=2)
    try:
        with pytest.raises(Unavailable, match="^database unavailable$"):
            await check(db)
        with pytest.raises(Unavailable):
            async with SqlUnitOfWork(db):
                pass
        with pytest.raises(Unavailable):
            await SqlOutboxReader(db).relay_batch(RecordingPublisher(), 10)
    finally:
        await db.dispose()


async def test_check_answers_on_a_live_database(engine: AsyncEngine) -> None:
    await check(engine)


async def test_in_memory_sqlite_serializes_units_of_work() -> None:
    from chat4all.adapters.sql.migrations import upgrade_database

    db = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        await upgrade_database(db)
        factory = SqlUnitOfWorkFactory(db)

        async def add(name: str) -> None:
            async with factory() as tx:
                await tx.users.add(User(uuid4(), name, "hash", at(0)))
                await asyncio.sleep(0.01)
                if name.endswith("odd"):
                    return  # rolled back
                await tx.commit()

        await asyncio.gather(*(add(f"user{n}{'odd' if n % 2 else ''}") for n in range(10)))
        async with factory() as tx:
            names = [user.username for user in await tx.users.list(username=None, limit=100, offset=0)]
        assert names == sorted(f"user{n}" for n in range(0, 10, 2))
    finally:
        await db.dispose()
