"""The worker's batches on SQLite and PostgreSQL: `MessageBatches` over SQLAlchemy's unit of work
(the repository's `get_many` / `update_many`) and, on PostgreSQL, on psycopg directly."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.ports import BatchWrite, MessageBatches
from chat4all.domain.errors import Unavailable
from chat4all.domain.messages import DeliveryStatus, Message, MessageStatus, StatusEvent
from tests.integration.sql_fixtures import DIRECT, SQLALCHEMY, terminate_other_connections
from tests.integration.sql_records import add_users, at, group, private, text_message

pytestmark = pytest.mark.services


@pytest.fixture
def backend(implementation: tuple[str, str]) -> str:
    return implementation[0]


async def stored(uow: SqlUnitOfWorkFactory, count: int, channels=("whatsapp", "instagram")):
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    batch = [text_message(conversation, alice, f"hello {n}", seconds=n, channels=channels) for n in range(count)]
    async with uow() as tx:
        await tx.conversations.add(conversation)
        for position, message in enumerate(batch, 1):
            await tx.messages.add(message, position)
        await tx.commit()
    return conversation, batch


async def history_of(uow: SqlUnitOfWorkFactory, message: Message) -> Message:
    async with uow() as tx:
        loaded = await tx.messages.get(message.id)
    assert loaded is not None
    return loaded


class Recorder:
    """An `apply` for `change` that records one channel's outcome on every message it is given."""

    def __init__(self, channel: str, *, delivered: bool = True, seconds: int = 20) -> None:
        self.channel, self.delivered, self.seconds = channel, delivered, seconds
        self.seen: list[dict] = []

    def __call__(self, found: dict) -> BatchWrite:
        self.seen.append({message_id: dict(message.deliveries) for message_id, message in found.items()})
        return BatchWrite(
            [
                message
                for message in found.values()
                if message.record_delivery(self.channel, delivered=self.delivered, now=at(self.seconds))
            ]
        )


async def test_read_loads_messages_with_deliveries_and_skips_unknown_ids(uow: SqlUnitOfWorkFactory, batches: MessageBatches) -> None:
    _, batch = await stored(uow, 3)
    found = await batches.read([batch[2].id, uuid4(), batch[0].id, batch[0].id])
    assert await batches.read([]) == {}
    assert set(found) == {batch[0].id, batch[2].id}
    loaded = found[batch[2].id]
    assert loaded.status is MessageStatus.ACCEPTED
    assert loaded.channels == ("whatsapp", "instagram")
    assert list(loaded.deliveries.items()) == [("whatsapp", DeliveryStatus.PENDING), ("instagram", DeliveryStatus.PENDING)]
    assert loaded.payload == batch[2].payload and loaded.created_at == batch[2].created_at
    assert (loaded.conversation_id, loaded.sender_id, loaded.recipient_id) == (batch[2].conversation_id, batch[2].sender_id, None)
    assert (loaded.priority, loaded.fingerprint) == (batch[2].priority, batch[2].fingerprint)
    assert loaded.history == [] and loaded.new_events == []


async def test_change_writes_statuses_changed_deliveries_and_events_in_order(uow: SqlUnitOfWorkFactory, batches: MessageBatches) -> None:
    _, batch = await stored(uow, 4)
    calls = []

    def apply(found: dict) -> BatchWrite:
        calls.append(set(found))
        first, second, third, fourth = (found[message.id] for message in batch)
        assert first.mark_routed(at(10))
        assert second.record_delivery("whatsapp", delivered=True, now=at(11))  # routes it too
        assert third.record_delivery("whatsapp", delivered=True, now=at(12))
        assert third.record_delivery("instagram", delivered=False, now=at(13), detail="blocked")
        return BatchWrite([third, first, second, fourth])  # the fourth has nothing new

    changed = await batches.change([message.id for message in reversed(batch)], apply)
    assert calls == [{message.id for message in batch}]
    assert set(changed) == {message.id for message in batch}
    assert all(message.new_events == [] for message in changed.values())
    assert changed[batch[2].id].status is MessageStatus.FAILED

    first, second, third, fourth = [await history_of(uow, message) for message in batch]
    assert first.status is MessageStatus.ROUTED
    assert first.deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.PENDING}
    assert first.history[1:] == [StatusEvent("routed", at(10), detail="whatsapp, instagram")]
    assert second.status is MessageStatus.ROUTED
    assert second.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.PENDING}
    assert third.status is MessageStatus.FAILED
    assert third.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.FAILED}
    assert third.history[1:] == [
        StatusEvent("routed", at(12), detail="whatsapp, instagram"),
        StatusEvent("delivered", at(12), channel="whatsapp"),
        StatusEvent("failed", at(13), channel="instagram", detail="blocked"),
        StatusEvent("failed", at(13), detail="failed on: instagram"),
    ]
    assert fourth.status is MessageStatus.ACCEPTED and len(fourth.history) == 1


async def test_a_change_with_nothing_new_writes_nothing(uow: SqlUnitOfWorkFactory, batches: MessageBatches) -> None:
    _, batch = await stored(uow, 2)
    changed = await batches.change([message.id for message in batch], lambda found: BatchWrite(list(found.values())))
    assert set(changed) == {message.id for message in batch}
    assert set(await batches.change([message.id for message in batch], lambda found: BatchWrite([]))) == set(changed)
    calls = []
    assert await batches.change([], calls.append) == {} and calls == []
    for message in batch:
        assert len((await history_of(uow, message)).history) == 1


async def test_unknown_ids_are_skipped_and_apply_still_runs_once(uow: SqlUnitOfWorkFactory, batches: MessageBatches) -> None:
    calls = []
    assert await batches.change([uuid4(), uuid4()], lambda found: calls.append(found) or BatchWrite([])) == {}
    assert calls == [{}]
    assert await batches.read([uuid4()]) == {}


async def test_overlapping_changes_serialize(uow: SqlUnitOfWorkFactory, batches: MessageBatches) -> None:
    """Two batches locking overlapping sets in opposite orders, each recording one channel: they
    wait for one another (no deadlock) and neither outcome is lost."""
    _, batch = await stored(uow, 6)
    ids = [message.id for message in batch]
    whatsapp, instagram = Recorder("whatsapp"), Recorder("instagram")
    # Warm the pools up, so the two batches run side by side instead of one waiting for a connection.
    await asyncio.gather(*(batches.read(ids) for _ in range(3)))
    await asyncio.wait_for(
        asyncio.gather(batches.change(ids, whatsapp), batches.change(list(reversed(ids[1:])), instagram)), timeout=20
    )
    found = await batches.read(ids)
    for message in found.values():
        expected = DeliveryStatus.DELIVERED if message.id != ids[0] else DeliveryStatus.PENDING
        assert message.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": expected}
        assert message.status is (MessageStatus.DELIVERED if message.id != ids[0] else MessageStatus.ROUTED)
        assert [event.status for event in (await history_of(uow, message)).history].count("routed") == 1


async def test_a_change_waits_for_the_lock_and_sees_the_deliveries_committed_meanwhile(
    uow: SqlUnitOfWorkFactory, batches: MessageBatches
) -> None:
    _, [message] = await stored(uow, 1)
    instagram = Recorder("instagram", seconds=30)
    async with uow() as tx:
        held = (await tx.messages.get_many([message.id], for_update=True))[message.id]
        assert held.record_delivery("whatsapp", delivered=True, now=at(20))
        await tx.messages.update_many([held])
        waiting = asyncio.create_task(batches.change([message.id], instagram))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the change did not wait for the lock"
        await tx.commit()
    await asyncio.wait_for(waiting, timeout=10)
    assert instagram.seen == [{message.id: {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.PENDING}}]
    finished = await history_of(uow, message)
    assert finished.status is MessageStatus.DELIVERED
    assert [(event.status, event.channel) for event in finished.history] == [
        ("accepted", None),
        ("routed", None),
        ("delivered", "whatsapp"),
        ("delivered", "instagram"),
        ("delivered", None),
    ]


async def test_a_message_without_deliveries_is_read_and_changed(uow: SqlUnitOfWorkFactory, batches: MessageBatches) -> None:
    _, batch = await stored(uow, 1)
    _, bare = await stored_without_channels(uow)
    found = await batches.read([batch[0].id, bare.id])
    assert set(found) == {batch[0].id, bare.id}
    assert found[bare.id].deliveries == {} and found[bare.id].status is MessageStatus.ACCEPTED
    assert found[batch[0].id].deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.PENDING}

    def route(found: dict) -> BatchWrite:
        return BatchWrite([message for message in found.values() if message.mark_routed(at(40))])

    changed = await batches.change([batch[0].id, bare.id, uuid4()], route)
    assert set(changed) == {batch[0].id, bare.id}
    routed = await history_of(uow, bare)
    assert routed.status is MessageStatus.ROUTED and routed.deliveries == {}
    assert routed.history[1:] == [StatusEvent("routed", at(40), detail="")]


async def test_a_failing_apply_writes_nothing_and_releases_the_locks(uow: SqlUnitOfWorkFactory, batches: MessageBatches) -> None:
    _, [message] = await stored(uow, 1)

    def broken(found: dict) -> BatchWrite:
        Recorder("whatsapp")(found)
        raise RuntimeError("a bug in a decision")

    with pytest.raises(RuntimeError, match="a bug"):
        await batches.change([message.id], broken)
    assert (await history_of(uow, message)).status is MessageStatus.ACCEPTED
    await asyncio.wait_for(batches.change([message.id], Recorder("instagram")), timeout=10)
    finished = await history_of(uow, message)
    assert finished.deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.DELIVERED}


@pytest.mark.parametrize("implementation", DIRECT, indirect=True)
async def test_a_dropped_connection_fails_one_read_and_the_next_call_works(
    uow: SqlUnitOfWorkFactory, batches: MessageBatches, database_url: str
) -> None:
    _, [message] = await stored(uow, 1)
    assert set(await batches.read([message.id])) == {message.id}
    terminate_other_connections(database_url)
    with pytest.raises(Unavailable):
        await batches.read([message.id])
    assert set(await batches.read([message.id])) == {message.id}
    # Soon after a failure connections are pinged before use: a second drop fails no call.
    terminate_other_connections(database_url)
    await batches.change([message.id], Recorder("whatsapp"))
    assert (await history_of(uow, message)).deliveries["whatsapp"] is DeliveryStatus.DELIVERED


@pytest.mark.parametrize("implementation", DIRECT, indirect=True)
async def test_a_change_on_a_dropped_connection_changes_nothing_and_the_next_call_works(
    uow: SqlUnitOfWorkFactory, batches: MessageBatches, database_url: str
) -> None:
    _, [message] = await stored(uow, 1)
    assert set(await batches.read([message.id])) == {message.id}
    terminate_other_connections(database_url)
    with pytest.raises(Unavailable):
        await batches.change([message.id], Recorder("whatsapp"))
    assert (await history_of(uow, message)).status is MessageStatus.ACCEPTED
    await batches.change([message.id], Recorder("whatsapp"))
    assert (await history_of(uow, message)).deliveries["whatsapp"] is DeliveryStatus.DELIVERED


@pytest.mark.parametrize("implementation", SQLALCHEMY, indirect=True)
async def test_conversations_get_many_with_members(uow: SqlUnitOfWorkFactory) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    team, pair = group([carol, alice, bob]), private(alice, bob)
    async with uow() as tx:
        await tx.conversations.add(team)
        await tx.conversations.add(pair)
        await tx.commit()
    async with uow() as tx:
        found = await tx.conversations.get_many([pair.id, uuid4(), team.id])
        assert await tx.conversations.get_many([]) == {}
    assert set(found) == {team.id, pair.id}
    assert found[team.id].members == (carol.id, alice.id, bob.id)
    assert found[pair.id].members == (alice.id, bob.id)


async def stored_without_channels(uow: SqlUnitOfWorkFactory):
    dave, erin, frank = await add_users(uow, "dave", "erin", "frank")
    conversation = group([dave, erin, frank])
    message = text_message(conversation, dave, "no channels", channels=())
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.messages.add(message, 1)
        await tx.commit()
    return conversation, message


async def test_without_pre_ping_one_unit_of_work_fails_on_dropped_connections_and_the_next_reconnects(
    postgres_url: str,
) -> None:
    import psycopg
    from sqlalchemy import make_url

    from chat4all.adapters.sql.engine import create_engine
    from chat4all.domain.errors import Unavailable

    db = create_engine(postgres_url, pre_ping=False)
    factory = SqlUnitOfWorkFactory(db)
    try:
        async with factory() as tx:
            await tx.messages.get_many([uuid4()])
        name = make_url(postgres_url).database
        admin = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        with pytest.raises(Unavailable):
            async with factory() as tx:
                await tx.messages.get_many([uuid4()])
        async with factory() as tx:
            assert await tx.messages.get_many([uuid4()]) == {}
    finally:
        await db.dispose()
