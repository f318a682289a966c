"""Read state in the unit of work (SQLAlchemy, both engines): conversation counters, read
horizons and receipts. Row locks follow `chat4all.application.ports.read_state`'s order; SQLite
takes its one write lock at BEGIN, so there the FOR UPDATE clauses are simply left out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import attrs
from sqlalchemy import Row, case, func, insert, literal, literal_column, select, tuple_, update

from chat4all.adapters.sql.base import SqlRepository
from chat4all.adapters.sql.tables import (
    UtcDateTime,
    conversation_reads,
    conversations,
    delivery_attempts,
    message_receipts,
    messages,
)
from chat4all.application.ports import LocatedMessage, ReadMark
from chat4all.domain.errors import NotFound
from chat4all.domain.failover import DeliveryAttempt
from chat4all.domain.messages import Message
from chat4all.domain.receipts import ReadHorizon, Receipt


def _at(moment: datetime) -> object:
    return literal(moment, UtcDateTime())


class SqlConversationCounters(SqlRepository):
    async def record_message(self, conversation_id: UUID, message_id: UUID, at: datetime) -> int:
        counted = (
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(
                message_count=conversations.c.message_count + 1,
                last_message_id=message_id,
                last_activity_at=case(
                    (conversations.c.last_activity_at < _at(at), _at(at)), else_=conversations.c.last_activity_at
                ),
            )
            .returning(conversations.c.message_count)
        )
        position = (await self._execute(counted)).scalar()
        if position is None:
            raise NotFound("no such conversation", code="conversation_not_found")
        return int(position)


def _horizon(row: Row) -> ReadHorizon:
    return ReadHorizon(
        conversation_id=row.conversation_id,
        member_id=row.user_id,
        position=row.read_up_to_position,
        message_id=row.read_up_to,
        read_at=row.read_at,
        unread_count=row.unread_count,
    )


def _horizon_of(conversation_id: UUID, member_id: UUID) -> object:
    return (conversation_reads.c.conversation_id == conversation_id) & (conversation_reads.c.user_id == member_id)


class SqlReadHorizonRepository(SqlRepository):
    async def get(self, conversation_id: UUID, member_id: UUID) -> ReadHorizon:
        locked = select(conversation_reads).where(_horizon_of(conversation_id, member_id)).with_for_update()
        row = (await self._execute(locked)).first()
        if row is None:  # a row to lock: two reads of one member must not both start from nothing
            created = {"conversation_id": conversation_id, "user_id": member_id}
            await self._execute(self._insert_ignoring_duplicates(conversation_reads).values(created))
            row = (await self._execute(locked)).one()
        return _horizon(row)

    async def save(self, horizon: ReadHorizon) -> None:
        await self._execute(
            update(conversation_reads)
            .where(_horizon_of(horizon.conversation_id, horizon.member_id))
            .values(
                read_up_to=horizon.message_id,
                read_up_to_position=horizon.position,
                read_at=horizon.read_at,
                unread_count=horizon.unread_count,
            )
        )

    async def count_new(self, conversation_id: UUID, recipients: Sequence[UUID], position: int) -> None:
        if not recipients:
            return
        rows = [{"conversation_id": conversation_id, "user_id": user_id, "unread_count": 1} for user_id in sorted(recipients)]
        counted = self._upsert(conversation_reads).values(rows)
        await self._execute(
            counted.on_conflict_do_update(
                index_elements=[conversation_reads.c.conversation_id, conversation_reads.c.user_id],
                set_={"unread_count": conversation_reads.c.unread_count + 1},
                where=conversation_reads.c.read_up_to_position < position,
            )
        )

    async def for_member(self, member_id: UUID, conversation_ids: Sequence[UUID]) -> dict[UUID, ReadHorizon]:
        if not conversation_ids:
            return {}
        rows = await self._execute(
            select(conversation_reads).where(
                conversation_reads.c.user_id == member_id, conversation_reads.c.conversation_id.in_(set(conversation_ids))
            )
        )
        return {row.conversation_id: _horizon(row) for row in rows}


def _receipt(row: Row) -> Receipt:
    return Receipt(row.message_id, row.recipient_id, row.delivered_at, row.read_at)


class SqlReceiptRepository(SqlRepository):
    async def add(self, message: Message, position: int, recipients: Sequence[UUID]) -> None:
        if not recipients:
            return
        rows = [
            {"message_id": message.id, "recipient_id": recipient, "conversation_id": message.conversation_id, "position": position}
            for recipient in recipients
        ]
        await self._execute(insert(message_receipts), rows)

    async def locate(self, message_id: UUID) -> LocatedMessage | None:
        query = select(messages.c.id, messages.c.conversation_id, messages.c.position).where(messages.c.id == message_id)
        row = (await self._execute(query)).first()
        if row is None or row.position is None:
            return None
        return LocatedMessage(row.id, row.conversation_id, row.position)

    async def mark_read(self, conversation_id: UUID, reader: UUID, *, after: int, up_to: int, at: datetime) -> list[ReadMark]:
        """Two statements: the lock on the messages (through the reader's unread receipts in the
        range, by the recipient index), then one UPDATE that also tells, per message, whether
        every other recipient had read it. The messages' locks make that answer final: another
        reader of the same message waits for this transaction, then sees its receipt read."""
        theirs = (
            (message_receipts.c.recipient_id == reader)
            & (message_receipts.c.conversation_id == conversation_id)
            & (message_receipts.c.position > after)
            & (message_receipts.c.position <= up_to)
            & message_receipts.c.read_at.is_(None)
        )
        await self._execute(
            select(messages.c.id)
            .join(message_receipts, message_receipts.c.message_id == messages.c.id)
            .where(theirs)
            .order_by(messages.c.id)
            .with_for_update(of=messages)
        )
        other = message_receipts.alias("other")
        # Spelled out: SQLAlchemy writes SQLite's RETURNING columns unqualified, which would turn
        # the correlation into `message_id = message_id` inside the subquery.
        updated_message = literal_column("message_receipts.message_id")
        others_unread = (
            select(func.count())
            .select_from(other)
            .where(other.c.message_id == updated_message, other.c.recipient_id != reader, other.c.read_at.is_(None))
            .scalar_subquery()
        )
        changed = await self._execute(
            update(message_receipts)
            .where(theirs)
            .values(read_at=_at(at), delivered_at=func.coalesce(message_receipts.c.delivered_at, _at(at)))
            .returning(message_receipts.c.message_id, message_receipts.c.position, (others_unread == 0).label("read_by_all"))
        )
        marks = [ReadMark(row.message_id, row.position, bool(row.read_by_all)) for row in changed]
        return sorted(marks, key=lambda mark: mark.position)

    async def mark_delivered(self, receipts: Sequence[tuple[UUID, UUID]], at: datetime) -> None:
        if not receipts:
            return
        await self._execute(
            update(message_receipts)
            .where(
                tuple_(message_receipts.c.message_id, message_receipts.c.recipient_id).in_(sorted(set(receipts))),
                message_receipts.c.delivered_at.is_(None),
            )
            .values(delivered_at=_at(at))
        )

    async def for_message(self, message_id: UUID) -> list[Receipt]:
        rows = await self._execute(
            select(message_receipts).where(message_receipts.c.message_id == message_id).order_by(message_receipts.c.recipient_id)
        )
        return [_receipt(row) for row in rows]

    async def record_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        if attempts:
            await self._execute(insert(delivery_attempts), [attrs.asdict(attempt) for attempt in attempts])

    async def attempts_for(self, message_id: UUID) -> list[DeliveryAttempt]:
        columns = [column for column in delivery_attempts.c if column.name != "id"]
        rows = await self._execute(
            select(*columns).where(delivery_attempts.c.message_id == message_id).order_by(delivery_attempts.c.id)
        )
        return [DeliveryAttempt(**row._mapping) for row in rows]
