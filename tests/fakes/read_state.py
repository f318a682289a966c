"""In-memory read state inside a unit of work: conversation counters, read horizons, receipts and
history by position, staged until commit and locked as the SQL adapters lock their rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from chat4all.application.ports import LocatedMessage, ReadMark
from chat4all.domain.failover import DeliveryAttempt
from chat4all.domain.history import PositionRange
from chat4all.domain.messages import Message
from chat4all.domain.receipts import ReadHorizon, Receipt, read_by_all
from tests.fakes.store import Transaction


class InMemoryConversationCounters:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._conversations = tx.table(tx.store.conversations)
        self._counts = tx.table(tx.store.message_counts)
        self._last = tx.table(tx.store.last_messages)

    async def record_message(self, conversation_id: UUID, message_id: UUID, at: datetime) -> int:
        await self._tx.lock(("conversation", conversation_id))
        position = (self._counts.get(conversation_id) or 0) + 1
        self._counts.put(conversation_id, position)
        self._last.put(conversation_id, message_id)
        conversation = self._conversations.get(conversation_id)
        if conversation is not None and at > conversation.last_activity_at:
            conversation.last_activity_at = at
            self._conversations.put(conversation_id, conversation)
        return position


class InMemoryReadHorizons:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._horizons = tx.table(tx.store.horizons)

    async def get(self, conversation_id: UUID, member_id: UUID) -> ReadHorizon:
        await self._tx.lock(("horizon", conversation_id, member_id))
        return self._horizons.get((conversation_id, member_id)) or ReadHorizon(conversation_id, member_id)

    async def save(self, horizon: ReadHorizon) -> None:
        self._horizons.put((horizon.conversation_id, horizon.member_id), horizon)

    async def count_new(self, conversation_id: UUID, recipients: Sequence[UUID], position: int) -> None:
        for recipient in recipients:
            await self.save((await self.get(conversation_id, recipient)).count_new(position))

    async def for_member(self, member_id: UUID, conversation_ids: Sequence[UUID]) -> dict[UUID, ReadHorizon]:
        found = {conversation_id: self._horizons.get((conversation_id, member_id)) for conversation_id in conversation_ids}
        return {conversation_id: horizon for conversation_id, horizon in found.items() if horizon is not None}


class InMemoryReceipts:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._receipts = tx.table(tx.store.receipts)
        self._attempts = tx.table(tx.store.delivery_attempts)
        self._messages = tx.table(tx.store.messages)
        self._positions = tx.table(tx.store.positions)

    async def add(self, message: Message, position: int, recipients: Sequence[UUID]) -> None:
        for recipient in recipients:
            self._receipts.put((message.id, recipient), Receipt(message.id, recipient))

    async def locate(self, message_id: UUID) -> LocatedMessage | None:
        message, position = self._messages.get(message_id), self._positions.get(message_id)
        if message is None or position is None:
            return None
        return LocatedMessage(message_id, message.conversation_id, position)

    async def mark_read(self, conversation_id: UUID, reader: UUID, *, after: int, up_to: int, at: datetime) -> list[ReadMark]:
        unread = {
            message_id: self._positions.get(message_id) or 0
            for message_id, recipient in self._receipts.select_keys(lambda key, receipt: key[1] == reader and receipt.read_at is None)
            if (message := self._messages.get(message_id)) is not None and message.conversation_id == conversation_id
        }
        wanted = sorted(message_id for message_id, position in unread.items() if after < position <= up_to)
        for message_id in wanted:  # messages first, in id order, as the SQL adapter locks them
            await self._tx.lock(("message", message_id))
        marks = []
        for message_id in wanted:
            changed = (self._receipts.get((message_id, reader)) or Receipt(message_id, reader)).read(at)
            if changed is not None:
                self._receipts.put((message_id, reader), changed)
                marks.append(ReadMark(message_id, unread[message_id], read_by_all(await self.for_message(message_id))))
        return sorted(marks, key=lambda mark: mark.position)

    async def mark_delivered(self, receipts: Sequence[tuple[UUID, UUID]], at: datetime) -> None:
        for key in receipts:
            receipt = self._receipts.get(key)
            if receipt is not None and (delivered := receipt.delivered(at)) is not None:
                self._receipts.put(key, delivered)

    async def for_message(self, message_id: UUID) -> list[Receipt]:
        return self._receipts.select(lambda receipt: receipt.message_id == message_id)

    async def record_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        for attempt in attempts:
            self._attempts.put((attempt.message_id, len(self._attempts.select())), attempt)

    async def attempts_for(self, message_id: UUID) -> list[DeliveryAttempt]:
        found = self._attempts.select_keys(lambda key, attempt: attempt.message_id == message_id)
        return [self._attempts.get(key) for key in sorted(found, key=lambda key: key[1])]


class InMemoryMessageHistory:
    def __init__(self, tx: Transaction) -> None:
        self._counts = tx.table(tx.store.message_counts)
        self._last = tx.table(tx.store.last_messages)
        self._messages = tx.table(tx.store.messages)
        self._positions = tx.table(tx.store.positions)
        self.ranges: list[PositionRange] = []  # what each page asked for

    async def total(self, conversation_id: UUID) -> int:
        return self._counts.get(conversation_id) or 0

    async def at_positions(self, conversation_id: UUID, positions: PositionRange) -> list[tuple[int, Message]]:
        self.ranges.append(positions)
        found = [
            (position, message)
            for message in self._messages.select(lambda row: row.conversation_id == conversation_id)
            if positions.first <= (position := self._positions.get(message.id) or 0) <= positions.last
        ]
        return sorted(found, key=lambda item: item[0])

    async def latest(self, conversation_ids: Sequence[UUID]) -> dict[UUID, Message]:
        found = {conversation_id: self._last.get(conversation_id) for conversation_id in conversation_ids}
        messages = {conversation_id: self._messages.get(message_id) for conversation_id, message_id in found.items() if message_id}
        return {conversation_id: message for conversation_id, message in messages.items() if message is not None}
