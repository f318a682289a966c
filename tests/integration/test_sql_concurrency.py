"""Idempotent sends under real concurrency: the same message_id sent 20 times at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.caching import ExpiringCache
from chat4all.adapters.sql.tables import message_deliveries, message_events, messages, outbox
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.messaging import SendMessage, SendRequest
from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.messages import MessageStatus, Priority
from chat4all.domain.users import User

pytestmark = pytest.mark.services

CONCURRENT_SENDS = 20


class FixedClock:
    def now(self) -> datetime:
        return datetime(2024, 11, 25, 12, 0, tzinfo=UTC)


async def count(engine: AsyncEngine, table) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(table))).scalar_one()


async def test_concurrent_sends_of_one_message_id_store_it_once(engine: AsyncEngine) -> None:
    uow = SqlUnitOfWorkFactory(engine)
    clock = FixedClock()
    alice, bob = User(uuid4(), "alice", "h", clock.now()), User(uuid4(), "bob", "h", clock.now())
    conversation = Conversation.start(
        conversation_id=uuid4(),
        type=ConversationType.PRIVATE,
        members=[alice.id, bob.id],
        creator=alice.id,
        metadata=ConversationMetadata(),
        now=clock.now(),
    )
    async with uow() as tx:
        await tx.users.add(alice)
        await tx.users.add(bob)
        await tx.conversations.add(conversation)
        await tx.commit()

    send = SendMessage(uow, clock, ("whatsapp", "instagram"), caches=ExpiringCache)
    request = SendRequest(
        message_id=uuid4(),
        conversation_id=conversation.id,
        sender_id=alice.id,
        recipient_id=None,
        channels=("all",),
        text="only once, please",
        file_id=None,
        priority=Priority.NORMAL,
    )
    results = await asyncio.gather(*(send.execute(alice.id, request) for _ in range(CONCURRENT_SENDS)), return_exceptions=True)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert errors == []
    assert {result.id for result in results} == {request.message_id}  # type: ignore[union-attr]
    assert all(result.status is MessageStatus.ACCEPTED for result in results)  # type: ignore[union-attr]
    assert await count(engine, messages) == 1
    assert await count(engine, outbox) == 1
    assert await count(engine, message_deliveries) == 2
    assert await count(engine, message_events) == 1
    async with engine.connect() as connection:
        row = (await connection.execute(select(outbox.c.topic, outbox.c.key, outbox.c.payload))).one()
    assert tuple(row) == (MESSAGE_PROCESSING, str(conversation.id), {"message_id": str(request.message_id)})
