"""The message intakes under test on real databases, each write path by name (unit of work on both
engines, the SQLite group commit, the PostgreSQL one-statement intake), and what their tests store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.postgres.connections import direct_pool
from chat4all.adapters.sql.postgres.intake import PostgresMessageIntake
from chat4all.adapters.sql.sqlite.intake import SqliteMessageIntake
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.messaging import UnitOfWorkIntake
from chat4all.application.ports import MessageIntake, OutboxEvent
from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.messages import Message, MessageDraft, Priority
from chat4all.domain.users import User

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# The unit-of-work intake runs on both databases; the one-statement intake exists for PostgreSQL only.
CASES = [
    ("sqlite", "unit-of-work"),
    ("postgresql", "unit-of-work"),
    ("postgresql", "one-statement"),
    ("sqlite", "group-commit"),
]
ONE_STATEMENT = [CASES[2]]
GROUP_COMMIT = CASES[2:]


@pytest.fixture(params=CASES, ids=["-".join(case) for case in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


@pytest.fixture
def backend(case: tuple[str, str]) -> str:
    return case[0]


@pytest.fixture
async def intake(case: tuple[str, str], database_url: str, engine: AsyncEngine) -> AsyncIterator[MessageIntake]:
    if case[1] == "unit-of-work":
        yield UnitOfWorkIntake(SqlUnitOfWorkFactory(engine))
        return
    if case[1] == "group-commit":
        yield SqliteMessageIntake(engine)
        return
    pool = direct_pool(database_url, max_connections=4)
    await pool.open()
    try:
        yield PostgresMessageIntake(pool)
    finally:
        await pool.close()


async def seed(engine: AsyncEngine) -> tuple[User, User, Conversation]:
    uow = SqlUnitOfWorkFactory(engine)
    alice, bob = User(uuid4(), "alice", "h", START), User(uuid4(), "bob", "h", START)
    conversation = Conversation.start(
        conversation_id=uuid4(),
        type=ConversationType.PRIVATE,
        members=[alice.id, bob.id],
        creator=alice.id,
        metadata=ConversationMetadata(),
        now=START,
    )
    async with uow() as tx:
        await tx.users.add(alice)
        await tx.users.add(bob)
        await tx.conversations.add(conversation)
        await tx.commit()
    return alice, bob, conversation


def accepted(conversation: Conversation, sender: UUID, payload: Any, at: datetime, message_id: UUID | None = None) -> Message:
    draft = MessageDraft(
        message_id or uuid4(), conversation.id, sender, None, ("whatsapp", "instagram"), payload, Priority.HIGH
    )
    return Message.accept(draft, at)


def routing_of(message: Message) -> OutboxEvent:
    return OutboxEvent(MESSAGE_PROCESSING, str(message.conversation_id), {"message_id": str(message.id)})


async def rows(engine: AsyncEngine, table: Any, *columns: Any) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(select(*columns) if columns else select(table))]
