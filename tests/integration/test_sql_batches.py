"""The batch repository methods the worker uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.domain.messages import DeliveryStatus, MessageStatus, StatusEvent
from tests.integration.sql_fixtures import (  # noqa: F401 - fixtures
    backend,
    database_url,
    engine,
    postgres_url,
    sqlite_template,
)
from tests.integration.test_sql_repositories import add_users, at, group, private, text_message

pytestmark = pytest.mark.services


@pytest.fixture
def uow(engine: AsyncEngine) -> SqlUnitOfWorkFactory:  # noqa: F811
    return SqlUnitOfWorkFactory(engine)


async def stored(uow: SqlUnitOfWorkFactory, count: int, channels=("whatsapp", "instagram")):
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    conversation = group([alice, bob, carol])
    batch = [text_message(conversation, alice, f"hello {n}", seconds=n, channels=channels) for n in range(count)]
    async with uow() as tx:
        await tx.conversations.add(conversation)
        for message in batch:
            await tx.messages.add(message)
        await tx.commit()
    return conversation, batch


async def test_get_many_loads_messages_with_deliveries_and_skips_unknown_ids(uow: SqlUnitOfWorkFactory) -> None:
    _, batch = await stored(uow, 3)
    wanted = [batch[2].id, uuid4(), batch[0].id, batch[0].id]
    async with uow() as tx:
        found = await tx.messages.get_many(wanted)
        assert await tx.messages.get_many([]) == {}
    assert set(found) == {batch[0].id, batch[2].id}
    loaded = found[batch[2].id]
    assert loaded.status is MessageStatus.ACCEPTED
    assert loaded.channels == ("whatsapp", "instagram")
    assert list(loaded.deliveries.items()) == [("whatsapp", DeliveryStatus.PENDING), ("instagram", DeliveryStatus.PENDING)]
    assert loaded.payload == batch[2].payload and loaded.created_at == batch[2].created_at
    assert loaded.history == [] and loaded.new_events == []


async def test_update_many_writes_statuses_changed_deliveries_and_events_in_order(uow: SqlUnitOfWorkFactory) -> None:
    _, batch = await stored(uow, 4)
    async with uow() as tx:
        found = await tx.messages.get_many([message.id for message in batch], for_update=True)
        first, second, third, fourth = (found[message.id] for message in batch)
        assert first.mark_routed(at(10))
        assert second.record_delivery("whatsapp", delivered=True, now=at(11))  # routes it too
        assert third.record_delivery("whatsapp", delivered=True, now=at(12))
        assert third.record_delivery("instagram", delivered=False, now=at(13), detail="blocked")
        await tx.messages.update_many([first, second, third, fourth])  # the fourth has nothing new
        assert all(message.new_events == [] for message in (first, second, third))
        await tx.commit()

    async with uow() as tx:
        loaded = {message.id: await tx.messages.get(message.id) for message in batch}
    first, second, third, fourth = (loaded[message.id] for message in batch)
    assert first.status is MessageStatus.ROUTED
    assert first.deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.PENDING}
    assert [event.status for event in first.history] == ["accepted", "routed"]
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


async def test_update_many_of_nothing_new_writes_nothing(uow: SqlUnitOfWorkFactory) -> None:
    _, batch = await stored(uow, 1)
    async with uow() as tx:
        found = await tx.messages.get_many([batch[0].id])
        await tx.messages.update_many(list(found.values()))
        await tx.messages.update_many([])
        await tx.commit()
    async with uow() as tx:
        assert len((await tx.messages.get(batch[0].id)).history) == 1


async def test_get_many_for_update_serializes_overlapping_batches(uow: SqlUnitOfWorkFactory, backend: str) -> None:  # noqa: F811
    """Two transactions locking overlapping sets, each recording one channel: neither outcome is lost."""
    _, batch = await stored(uow, 6)
    ids = [message.id for message in batch]

    async def record(channel: str, wanted: list) -> None:
        async with uow() as tx:
            found = await tx.messages.get_many(wanted, for_update=True)
            await asyncio.sleep(0.02)  # holding the locks
            for message in found.values():
                message.record_delivery(channel, delivered=True, now=at(20))
            await tx.messages.update_many(list(found.values()))
            await tx.commit()

    await asyncio.gather(record("whatsapp", ids), record("instagram", list(reversed(ids))))
    async with uow() as tx:
        found = await tx.messages.get_many(ids)
    for message in found.values():
        assert message.status is MessageStatus.DELIVERED
        assert message.deliveries == {"whatsapp": DeliveryStatus.DELIVERED, "instagram": DeliveryStatus.DELIVERED}


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


async def test_get_many_for_update_finds_a_message_without_deliveries(uow: SqlUnitOfWorkFactory) -> None:
    _, batch = await stored(uow, 1)
    _, bare = await stored_without_channels(uow)
    async with uow() as tx:
        found = await tx.messages.get_many([batch[0].id, bare.id], for_update=True)
    assert set(found) == {batch[0].id, bare.id}
    assert found[bare.id].deliveries == {} and found[bare.id].status is MessageStatus.ACCEPTED
    assert found[batch[0].id].deliveries == {"whatsapp": DeliveryStatus.PENDING, "instagram": DeliveryStatus.PENDING}


async def stored_without_channels(uow: SqlUnitOfWorkFactory):
    dave, erin, frank = await add_users(uow, "dave", "erin", "frank")
    conversation = group([dave, erin, frank])
    message = text_message(conversation, dave, "no channels", channels=())
    async with uow() as tx:
        await tx.conversations.add(conversation)
        await tx.messages.add(message)
        await tx.commit()
    return conversation, message


async def test_without_pre_ping_one_unit_of_work_fails_on_dropped_connections_and_the_next_reconnects(
    postgres_url: str,  # noqa: F811
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
