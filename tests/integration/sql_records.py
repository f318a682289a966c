"""What the SQL adapter tests store and publish: users, conversations and messages at fixed times, rows
counted, and a publisher that records what the outbox relays."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.ports import OutboxEvent
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.messages import Message, MessageDraft, Priority, TextPayload
from chat4all.domain.users import User

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
