"""Messages through the unit of work (SQLAlchemy, both engines): the reads every profile serves,
and the writes `UnitOfWorkIntake` and `UnitOfWorkMessageBatches` make in the caller's transaction
(see `chat4all.adapters.sql` for which of them each engine runs in production)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, and_, bindparam, exc, func, insert, literal_column, or_, select, update

from chat4all.adapters.sql.base import SqlRepository
from chat4all.adapters.sql.errors import is_unique_violation
from chat4all.adapters.sql.message_rows import history_rows, message_from_row, message_row
from chat4all.adapters.sql.tables import message_deliveries, message_events, messages
from chat4all.application.errors import DuplicateMessage
from chat4all.domain.messages import DeliveryStatus, Message, MessageStatus, StatusEvent

MESSAGE_COLUMNS = [column for column in messages.c if column.name != "seq"]
_DELIVERY_UPSERTS: dict[str, Any] = {}  # by dialect (see `_delivery_upsert`)


class MessageReads(SqlRepository):
    """What every reader of messages shares: their deliveries, by message."""

    async def _deliveries_of(self, message_ids: list[UUID]) -> dict[UUID, dict[str, DeliveryStatus]]:
        found: dict[UUID, dict[str, DeliveryStatus]] = defaultdict(dict)
        if not message_ids:
            return found
        rows = await self._execute(
            select(message_deliveries.c.message_id, message_deliveries.c.channel, message_deliveries.c.status).where(
                message_deliveries.c.message_id.in_(message_ids)
            )
        )
        for message_id, channel, status in rows:
            found[message_id][channel] = DeliveryStatus(status)
        return found


class SqlMessageRepository(MessageReads):
    async def add(self, message: Message, position: int) -> None:
        values = {**message_row(message), "position": position}
        if self._dialect == "sqlite":
            # SQLite cannot generate a second increasing column; writes are serialized there,
            # so the next rowid (O(1) to find) is a safe, strictly increasing sequence number.
            values["seq"] = (
                select(func.coalesce(func.max(literal_column("rowid")), 0) + 1).select_from(messages).scalar_subquery()
            )
        try:
            await self._execute(insert(messages).values(values))
        except exc.IntegrityError as error:
            if is_unique_violation(error):
                raise DuplicateMessage(f"message {message.id} already exists") from error
            raise
        if message.deliveries:
            at = message.new_events[-1].at if message.new_events else message.created_at
            await self._execute(
                insert(message_deliveries),
                [
                    {"message_id": message.id, "channel": channel, "status": status.value, "updated_at": at}
                    for channel, status in message.deliveries.items()
                ],
            )
        await self._append_events(message)

    async def get(self, message_id: UUID, *, for_update: bool = False) -> Message | None:
        query = select(*MESSAGE_COLUMNS).where(messages.c.id == message_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._execute(query)).first()
        if row is None:
            return None
        deliveries = await self._deliveries_of([message_id])
        events = await self._execute(
            select(message_events).where(message_events.c.message_id == message_id).order_by(message_events.c.id)
        )
        history = [StatusEvent(event.status, event.at, event.channel, event.detail) for event in events]
        return message_from_row(row, deliveries[message_id], history)

    async def get_many(self, message_ids: Sequence[UUID], *, for_update: bool = False) -> dict[UUID, Message]:
        """One statement: the messages joined with their deliveries.

        With `for_update`, the join is inner and locks the delivery rows too (in message id
        order): after waiting for a lock, PostgreSQL re-reads the newest version of every locked
        row, so the deliveries cannot be stale (they would be with an unlocked outer join). A
        message without deliveries is then read, and locked, by a second statement.
        """
        if not message_ids:
            return {}
        wanted = sorted(set(message_ids))
        columns = (*MESSAGE_COLUMNS, message_deliveries.c.channel.label("_channel"), message_deliveries.c.status.label("_status"))
        if for_update:
            query = (
                select(*columns)
                .select_from(messages.join(message_deliveries, message_deliveries.c.message_id == messages.c.id))
                .where(messages.c.id.in_(wanted))
                .order_by(messages.c.id, message_deliveries.c.channel)
                .with_for_update()
            )
        else:
            query = (
                select(*columns)
                .select_from(messages.outerjoin(message_deliveries, message_deliveries.c.message_id == messages.c.id))
                .where(messages.c.id.in_(wanted))
            )
        rows: dict[UUID, Row] = {}
        deliveries: dict[UUID, dict[str, DeliveryStatus]] = defaultdict(dict)
        for row in await self._execute(query):
            rows.setdefault(row.id, row)
            if row._channel is not None:
                deliveries[row.id][row._channel] = DeliveryStatus(row._status)
        if for_update and len(rows) < len(wanted):
            rest = [message_id for message_id in wanted if message_id not in rows]
            locked = select(*MESSAGE_COLUMNS).where(messages.c.id.in_(rest)).order_by(messages.c.id).with_for_update()
            for row in await self._execute(locked):
                rows[row.id] = row
        return {message_id: message_from_row(row, deliveries[message_id], []) for message_id, row in rows.items()}

    async def update_many(self, batch: Sequence[Message]) -> None:
        """A few statements for the whole batch: one UPDATE per distinct new status, one upsert of
        the deliveries that have a new event, one INSERT of the new events, and one UPDATE of the
        times messages were read by all (when any message has one: those already stored stay)."""
        read = [{"read_id": message.id, "read_at": message.read_by_all_at} for message in batch if message.read_by_all_at]
        if read:
            await self._execute(
                update(messages)
                .where(messages.c.id == bindparam("read_id"), messages.c.read_by_all_at.is_(None))
                .values(read_by_all_at=bindparam("read_at")),
                read,
            )
        changed = [message for message in batch if message.new_events]
        if not changed:
            return
        by_status: dict[str, list[UUID]] = defaultdict(list)
        deliveries: list[dict[str, Any]] = []
        for message in changed:
            if any(event.channel is None for event in message.new_events):  # a status change has no channel
                by_status[message.status.value].append(message.id)
            changed_at = {event.channel: event.at for event in message.new_events if event.channel is not None}
            deliveries += [
                {"message_id": message.id, "channel": channel, "status": message.deliveries[channel].value, "updated_at": at}
                for channel, at in changed_at.items()
                if channel in message.deliveries
            ]
        for status, ids in by_status.items():
            await self._execute(update(messages).where(messages.c.id.in_(ids)).values(status=status))
        if deliveries:
            await self._execute(self._delivery_upsert(), deliveries)
        await self._execute(
            insert(message_events), [row for message in changed for row in history_rows(message)]
        )
        for message in changed:
            message.new_events.clear()

    def _delivery_upsert(self) -> Any:
        """Built once per dialect: its `excluded` alias copies the table's columns, dearer than running it."""
        upsert = _DELIVERY_UPSERTS.get(self._dialect)
        if upsert is None:
            insert_delivery = self._upsert(message_deliveries)
            upsert = _DELIVERY_UPSERTS[self._dialect] = insert_delivery.on_conflict_do_update(
                index_elements=[message_deliveries.c.message_id, message_deliveries.c.channel],
                set_={"status": insert_delivery.excluded.status, "updated_at": insert_delivery.excluded.updated_at},
                where=message_deliveries.c.status != insert_delivery.excluded.status,
            )
        return upsert

    async def list_for_conversation(self, conversation_id: UUID, *, limit: int, offset: int) -> tuple[list[Message], int]:
        total = (
            await self._execute(select(func.count()).select_from(messages).where(messages.c.conversation_id == conversation_id))
        ).scalar_one()
        rows = (
            await self._execute(
                select(*MESSAGE_COLUMNS)
                .where(messages.c.conversation_id == conversation_id)
                .order_by(messages.c.seq)
                .limit(limit)
                .offset(offset)
            )
        ).all()
        deliveries = await self._deliveries_of([row.id for row in rows])
        return [message_from_row(row, deliveries[row.id], []) for row in rows], total

    async def unfinished_before(
        self, before: datetime, limit: int, *, after: tuple[datetime, UUID] | None = None
    ) -> list[Message]:
        unfinished = [MessageStatus.ACCEPTED.value, MessageStatus.ROUTED.value]
        query = select(*MESSAGE_COLUMNS).where(messages.c.status.in_(unfinished), messages.c.created_at < before)
        if after is not None:
            at, message_id = after
            query = query.where(
                or_(messages.c.created_at > at, and_(messages.c.created_at == at, messages.c.id > message_id))
            )
        rows = (await self._execute(query.order_by(messages.c.created_at, messages.c.id).limit(limit))).all()
        deliveries = await self._deliveries_of([row.id for row in rows])
        return [message_from_row(row, deliveries[row.id], []) for row in rows]

    async def _append_events(self, message: Message) -> None:
        if not message.new_events:
            return
        await self._execute(insert(message_events), history_rows(message))
        message.new_events.clear()
