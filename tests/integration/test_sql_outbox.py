"""The outbox relay against real SQLite and PostgreSQL, through SQLAlchemy and, on PostgreSQL, on
psycopg directly: in order, rows deleted once published, each row once however many relays run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chat4all.adapters.sql.outbox import SqlOutboxReader
from chat4all.adapters.sql.postgres.connections import direct_pool
from chat4all.adapters.sql.postgres.outbox import PostgresOutboxReader
from chat4all.adapters.sql.tables import outbox
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.ports import OutboxEvent, OutboxReader
from tests.integration.sql_records import RecordingPublisher, count_rows

pytestmark = pytest.mark.services


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
