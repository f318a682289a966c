from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, delete, exc, exists, func, insert, select, update

from chat4all.adapters.sql.base import SqlRepository
from chat4all.adapters.sql.errors import is_unique_violation
from chat4all.adapters.sql.tables import conversation_members, conversations, file_shares
from chat4all.application.errors import DuplicateKey
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.quotas import RecentStarts


def _conversation(row: Row, members: Iterable[UUID]) -> Conversation:
    return Conversation(
        id=row.id,
        type=ConversationType(row.type),
        members=tuple(members),
        metadata=ConversationMetadata(name=row.name, description=row.description),
        created_at=row.created_at,
        last_activity_at=row.last_activity_at,
        created_by=row.created_by,
    )


class SqlConversationRepository(SqlRepository):
    async def add(self, conversation: Conversation) -> None:
        try:
            await self._execute(
                insert(conversations).values(
                    id=conversation.id,
                    type=conversation.type.value,
                    name=conversation.metadata.name,
                    description=conversation.metadata.description,
                    created_at=conversation.created_at,
                    last_activity_at=conversation.last_activity_at,
                    private_key=conversation.private_key,
                    created_by=conversation.created_by,
                )
            )
        except exc.IntegrityError as error:
            if is_unique_violation(error):
                raise DuplicateKey("this conversation already exists") from error
            raise
        await self._execute(
            insert(conversation_members),
            [
                {"conversation_id": conversation.id, "user_id": member, "position": position}
                for position, member in enumerate(conversation.members)
            ],
        )

    async def get(self, conversation_id: UUID) -> Conversation | None:
        return await self._one(select(conversations).where(conversations.c.id == conversation_id))

    async def get_private(self, pair_key: str) -> Conversation | None:
        return await self._one(select(conversations).where(conversations.c.private_key == pair_key))

    async def get_many(self, conversation_ids: Sequence[UUID]) -> dict[UUID, Conversation]:
        if not conversation_ids:
            return {}
        rows = (await self._execute(select(conversations).where(conversations.c.id.in_(set(conversation_ids))))).all()
        members = await self._members_of([row.id for row in rows])
        return {row.id: _conversation(row, members[row.id]) for row in rows}

    async def list_for_member(self, user_id: UUID, *, limit: int, offset: int) -> tuple[list[Conversation], int]:
        total = (
            await self._execute(
                select(func.count()).select_from(conversation_members).where(conversation_members.c.user_id == user_id)
            )
        ).scalar_one()
        rows = (
            await self._execute(
                select(conversations)
                .join(conversation_members, conversation_members.c.conversation_id == conversations.c.id)
                .where(conversation_members.c.user_id == user_id)
                .order_by(conversations.c.last_activity_at.desc(), conversations.c.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
        members = await self._members_of([row.id for row in rows])
        return [_conversation(row, members[row.id]) for row in rows], total

    async def touch(self, conversation_id: UUID, at: datetime) -> None:
        await self._execute(
            update(conversations)
            .where(conversations.c.id == conversation_id, conversations.c.last_activity_at < at)
            .values(last_activity_at=at)
        )

    async def remove_member(self, conversation_id: UUID, user_id: UUID) -> None:
        await self._execute(
            delete(conversation_members).where(
                conversation_members.c.conversation_id == conversation_id, conversation_members.c.user_id == user_id
            )
        )

    async def started_since(self, user_id: UUID, since: datetime) -> RecentStarts:
        await self._lock_until_commit(f"quota:conversations:{user_id}")
        count, earliest = (
            await self._execute(
                select(func.count(), func.min(conversations.c.created_at)).where(
                    conversations.c.created_by == user_id, conversations.c.created_at > since
                )
            )
        ).one()
        return RecentStarts(int(count), earliest)

    async def shares_file(self, file_id: UUID, user_id: UUID) -> bool:
        shared = exists().where(
            file_shares.c.file_id == file_id,
            conversation_members.c.conversation_id == file_shares.c.conversation_id,
            conversation_members.c.user_id == user_id,
        )
        return bool((await self._execute(select(shared))).scalar())

    async def record_file_share(self, file_id: UUID, conversation_id: UUID) -> None:
        await self._execute(
            self._insert_ignoring_duplicates(file_shares).values(file_id=file_id, conversation_id=conversation_id)
        )

    async def _one(self, query: Select[Any]) -> Conversation | None:
        row = (await self._execute(query)).first()
        if row is None:
            return None
        members = await self._members_of([row.id])
        return _conversation(row, members[row.id])

    async def _members_of(self, conversation_ids: list[UUID]) -> dict[UUID, list[UUID]]:
        members: dict[UUID, list[UUID]] = defaultdict(list)
        if not conversation_ids:
            return members
        rows = await self._execute(
            select(conversation_members.c.conversation_id, conversation_members.c.user_id)
            .where(conversation_members.c.conversation_id.in_(conversation_ids))
            .order_by(conversation_members.c.conversation_id, conversation_members.c.position)
        )
        for conversation_id, user_id in rows:
            members[conversation_id].append(user_id)
        return members
