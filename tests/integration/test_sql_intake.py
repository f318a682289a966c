"""The message intake (the hot write path of SendMessage) on real databases: the one-statement
PostgreSQL intake must store exactly what the unit-of-work intake stores, once, and survive a
connection the server dropped."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.postgres.connections import conninfo_of, direct_pool
from chat4all.adapters.sql.postgres.intake import PostgresMessageIntake
from chat4all.adapters.sql.tables import (
    conversations,
    file_shares,
    message_deliveries,
    message_events,
    messages,
    outbox,
)
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.ports import MessageIntake
from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.errors import InvalidInput
from chat4all.domain.messages import FilePayload, Message, Priority, TextPayload
from chat4all.domain.uploads import Upload, UploadStatus
from chat4all.domain.users import User
from tests.integration.sql_intakes import (  # noqa: F401 - fixtures
    GROUP_COMMIT,
    ONE_STATEMENT,
    START,
    accepted,
    backend,
    case,
    intake,
    routing_of,
    rows,
    seed,
)

pytestmark = pytest.mark.services


async def test_an_accepted_message_is_stored_with_everything_that_belongs_to_it(intake: MessageIntake, engine: AsyncEngine) -> None:
    alice, _, conversation = await seed(engine)
    message = accepted(conversation, alice.id, TextPayload("hello"), START + timedelta(minutes=1))

    assert await intake.accept(message, conversation, routing_of(message)) is True

    repository_view = await _read_back(engine, message.id)
    assert repository_view.payload == TextPayload("hello")
    assert repository_view.channels == ("whatsapp", "instagram")
    assert repository_view.priority is Priority.HIGH
    assert repository_view.fingerprint == message.fingerprint
    assert [(event.status, event.at) for event in repository_view.history] == [("accepted", message.created_at)]
    assert {channel: status.value for channel, status in repository_view.deliveries.items()} == {
        "whatsapp": "pending",
        "instagram": "pending",
    }
    assert await rows(engine, outbox, outbox.c.topic, outbox.c.key, outbox.c.payload) == [
        (MESSAGE_PROCESSING, str(conversation.id), {"message_id": str(message.id)})
    ]
    assert await rows(engine, conversations, conversations.c.last_activity_at) == [(message.created_at,)]


async def test_a_message_id_that_exists_stores_nothing_more(intake: MessageIntake, engine: AsyncEngine) -> None:
    alice, _, conversation = await seed(engine)
    first = accepted(conversation, alice.id, TextPayload("first"), START + timedelta(minutes=1))
    again = accepted(conversation, alice.id, TextPayload("other text"), START + timedelta(minutes=2), first.id)
    assert await intake.accept(first, conversation, routing_of(first)) is True

    assert await intake.accept(again, conversation, routing_of(again)) is False

    assert (await _read_back(engine, first.id)).payload == TextPayload("first")
    assert len(await rows(engine, outbox)) == 1
    assert len(await rows(engine, message_events)) == 1
    assert len(await rows(engine, message_deliveries)) == 2
    assert await rows(engine, conversations, conversations.c.last_activity_at) == [(first.created_at,)]


async def test_concurrent_accepts_of_one_id_store_it_once(intake: MessageIntake, engine: AsyncEngine) -> None:
    alice, _, conversation = await seed(engine)
    message_id = uuid4()
    copies = [accepted(conversation, alice.id, TextPayload("once"), START, message_id) for _ in range(20)]

    results = await asyncio.gather(*(intake.accept(copy, conversation, routing_of(copy)) for copy in copies))

    assert sorted(results) == [False] * 19 + [True]
    assert len(await rows(engine, messages)) == 1
    assert len(await rows(engine, outbox)) == 1
    assert len(await rows(engine, message_events)) == 1


async def test_a_file_message_records_the_share_with_its_conversation(intake: MessageIntake, engine: AsyncEngine) -> None:
    alice, _, conversation = await seed(engine)
    upload = Upload(
        uuid4(), alice.id, "a.pdf", 10, "application/pdf", 8, UploadStatus.COMPLETED, START, START + timedelta(hours=1)
    )
    async with SqlUnitOfWorkFactory(engine)() as tx:
        await tx.uploads.add(upload)
        await tx.commit()
    payload = FilePayload(upload.id, "a.pdf", 10, "application/pdf", "0" * 64)
    message = accepted(conversation, alice.id, payload, START + timedelta(minutes=1))

    assert await intake.accept(message, conversation, routing_of(message)) is True

    assert await rows(engine, file_shares) == [(upload.id, conversation.id)]
    assert (await _read_back(engine, message.id)).payload == payload


@pytest.mark.parametrize("case", ONE_STATEMENT, indirect=True, ids="-".join)
async def test_the_postgres_intake_replaces_a_connection_the_server_dropped(database_url: str, engine: AsyncEngine) -> None:
    alice, _, conversation = await seed(engine)
    pool = direct_pool(database_url, max_connections=1)
    await pool.open()
    intake = PostgresMessageIntake(pool)
    try:
        first = accepted(conversation, alice.id, TextPayload("before"), START)
        assert await intake.accept(first, conversation, routing_of(first)) is True
        with psycopg.connect(conninfo_of(database_url), autocommit=True) as admin:
            terminated = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'chat4all-direct' AND datname = current_database()"
            ).fetchone()
        assert terminated is not None and terminated[0] >= 1

        second = accepted(conversation, alice.id, TextPayload("after"), START + timedelta(seconds=1))
        assert await intake.accept(second, conversation, routing_of(second)) is True
    finally:
        await pool.close()
    assert len(await rows(engine, messages)) == 2


@pytest.mark.parametrize("case", GROUP_COMMIT, indirect=True, ids="-".join)
async def test_concurrent_accepts_share_statements_and_publish_in_listing_order(intake: MessageIntake, engine: AsyncEngine) -> None:
    alice, bob, first = await seed(engine)
    carol = User(uuid4(), "carol", "h", START)
    second = Conversation.start(
        conversation_id=uuid4(),
        type=ConversationType.GROUP,
        members=[alice.id, bob.id, carol.id],
        creator=alice.id,
        metadata=ConversationMetadata(name="team"),
        now=START,
    )
    async with SqlUnitOfWorkFactory(engine)() as tx:
        await tx.users.add(carol)
        await tx.conversations.add(second)
        await tx.commit()
    batch = [
        (accepted(conversation, alice.id, TextPayload(f"n{index}"), START + timedelta(milliseconds=index)), conversation)
        for index in range(120)
        for conversation in (first, second)
    ]
    results = await asyncio.gather(*(intake.accept(message, owner, routing_of(message)) for message, owner in batch))

    assert results == [True] * len(batch)
    stored = sorted(await rows(engine, messages, messages.c.seq, messages.c.id, messages.c.conversation_id))
    published = sorted(await rows(engine, outbox, outbox.c.id, outbox.c.key, outbox.c.payload))
    for conversation in (first, second):
        listing_order = [message_id for _, message_id, owner in stored if owner == conversation.id]
        publication_order = [UUID(payload["message_id"]) for _, key, payload in published if key == str(conversation.id)]
        assert len(listing_order) == 120
        assert publication_order == listing_order
    assert len(await rows(engine, message_events)) == len(batch)
    assert len(await rows(engine, message_deliveries)) == 2 * len(batch)
    latest = START + timedelta(milliseconds=119)
    assert await rows(engine, conversations, conversations.c.last_activity_at) == [(latest,), (latest,)]


@pytest.mark.parametrize("case", ONE_STATEMENT, indirect=True, ids="-".join)
async def test_a_message_the_database_refuses_fails_alone_when_batched(database_url: str, engine: AsyncEngine) -> None:
    alice, _, conversation = await seed(engine)
    batch = [accepted(conversation, alice.id, TextPayload(f"n{index}"), START) for index in range(10)]
    refused = batch[5]
    refused.deliveries["x" * 100] = refused.deliveries.pop("whatsapp")  # longer than a channel column holds
    pool = direct_pool(database_url, max_connections=1)
    await pool.open()
    intake = PostgresMessageIntake(pool, max_in_flight=1)  # the first goes alone, the other nine together
    try:
        results = await asyncio.gather(
            *(intake.accept(message, conversation, routing_of(message)) for message in batch), return_exceptions=True
        )
    finally:
        await pool.close()

    assert isinstance(results[5], InvalidInput) and results[5].code == "unstorable_value"
    assert results[:5] + results[6:] == [True] * 9
    assert {row[0] for row in await rows(engine, messages, messages.c.id)} == {message.id for message in batch} - {refused.id}
    assert len(await rows(engine, outbox)) == 9


async def _read_back(engine: AsyncEngine, message_id: UUID) -> Message:
    async with SqlUnitOfWorkFactory(engine)() as tx:
        message = await tx.messages.get(message_id)
    assert message is not None
    return message
