"""An in-memory `ReadingUnitOfWork`: conversations, messages, positions, receipts, horizons and
event logs, changed on a copy and swapped in on commit (a unit of work left uncommitted changes
nothing), for unit tests of the read-state use cases."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.application.event_ports import LocatedMessage, ReadMark
from chat4all.domain.conversations import Conversation
from chat4all.domain.history import PositionRange
from chat4all.domain.messages import Message
from chat4all.domain.receipts import ReadHorizon, Receipt, read_by_all
from tests.fakes.events import EventLogState, InMemoryUserEventLog, InMemoryUserEventReader


@attrs.define
class ReadingState:
    conversations: dict[UUID, Conversation] = attrs.field(factory=dict)
    messages: dict[UUID, Message] = attrs.field(factory=dict)
    positions: dict[UUID, int] = attrs.field(factory=dict)  # message id -> position in its conversation
    message_counts: dict[UUID, int] = attrs.field(factory=dict)
    last_messages: dict[UUID, UUID] = attrs.field(factory=dict)
    receipts: dict[tuple[UUID, UUID], Receipt] = attrs.field(factory=dict)  # (message id, recipient id)
    horizons: dict[tuple[UUID, UUID], ReadHorizon] = attrs.field(factory=dict)  # (conversation id, member id)
    log: EventLogState = attrs.field(factory=EventLogState)


class InMemoryReadingStore:
    def __init__(self) -> None:
        self.state = ReadingState()
        self.commits = 0
        self.reader = InMemoryUserEventReader(lambda: self.state.log)


class _Conversations:
    def __init__(self, state: ReadingState) -> None:
        self._state = state

    async def add(self, conversation: Conversation) -> None:
        self._state.conversations[conversation.id] = conversation

    async def get(self, conversation_id: UUID) -> Conversation | None:
        return self._state.conversations.get(conversation_id)


class _Messages:
    def __init__(self, state: ReadingState) -> None:
        self._state = state
        self.locked: list[list[UUID]] = []

    async def add(self, message: Message) -> None:
        message.new_events.clear()
        self._state.messages[message.id] = message

    async def get(self, message_id: UUID, *, for_update: bool = False) -> Message | None:
        return self._state.messages.get(message_id)

    async def get_many(self, message_ids: Sequence[UUID], *, for_update: bool = False) -> dict[UUID, Message]:
        if for_update:
            self.locked.append(sorted(set(message_ids)))
        return {message_id: self._state.messages[message_id] for message_id in message_ids if message_id in self._state.messages}

    async def update_many(self, messages: Sequence[Message]) -> None:
        for message in messages:
            message.new_events.clear()
            self._state.messages[message.id] = message


class _Counters:
    def __init__(self, state: ReadingState) -> None:
        self._state = state

    async def record_message(self, conversation_id: UUID, message_id: UUID, at: datetime) -> int:
        position = self._state.message_counts.get(conversation_id, 0) + 1
        self._state.message_counts[conversation_id] = position
        self._state.last_messages[conversation_id] = message_id
        self._state.positions[message_id] = position
        conversation = self._state.conversations[conversation_id]
        conversation.last_activity_at = max(conversation.last_activity_at, at)
        return position


class _Horizons:
    def __init__(self, state: ReadingState) -> None:
        self._state = state

    async def get(self, conversation_id: UUID, member_id: UUID) -> ReadHorizon:
        return self._state.horizons.get((conversation_id, member_id), ReadHorizon(conversation_id, member_id))

    async def save(self, horizon: ReadHorizon) -> None:
        self._state.horizons[horizon.conversation_id, horizon.member_id] = horizon

    async def count_new(self, conversation_id: UUID, recipients: Sequence[UUID], position: int) -> None:
        for recipient in recipients:
            await self.save((await self.get(conversation_id, recipient)).count_new(position))

    async def for_member(self, member_id: UUID, conversation_ids: Sequence[UUID]) -> dict[UUID, ReadHorizon]:
        found = {conversation_id: self._state.horizons.get((conversation_id, member_id)) for conversation_id in conversation_ids}
        return {conversation_id: horizon for conversation_id, horizon in found.items() if horizon is not None}


class _Receipts:
    def __init__(self, state: ReadingState) -> None:
        self._state = state

    async def add(self, message: Message, position: int, recipients: Sequence[UUID]) -> None:
        for recipient in recipients:
            self._state.receipts[message.id, recipient] = Receipt(message.id, recipient)

    async def locate(self, message_id: UUID) -> LocatedMessage | None:
        message = self._state.messages.get(message_id)
        if message is None:
            return None
        return LocatedMessage(message_id, message.conversation_id, self._state.positions[message_id])

    async def mark_read(self, conversation_id: UUID, reader: UUID, *, after: int, up_to: int, at: datetime) -> list[ReadMark]:
        marks = []
        for (message_id, recipient), receipt in sorted(self._state.receipts.items(), key=lambda item: item[0][0]):
            message = self._state.messages[message_id]
            position = self._state.positions[message_id]
            if recipient != reader or message.conversation_id != conversation_id or not after < position <= up_to:
                continue
            if (changed := receipt.read(at)) is not None:
                self._state.receipts[message_id, recipient] = changed
                marks.append(ReadMark(message_id, position, read_by_all(await self.for_message(message_id))))
        return marks

    async def mark_delivered(self, message_id: UUID, at: datetime) -> list[Receipt]:
        changed = []
        for receipt in await self.for_message(message_id):
            if (delivered := receipt.delivered(at)) is not None:
                self._state.receipts[message_id, receipt.recipient_id] = delivered
                changed.append(delivered)
        return changed

    async def for_message(self, message_id: UUID) -> list[Receipt]:
        return [receipt for (of, _), receipt in self._state.receipts.items() if of == message_id]


class _History:
    def __init__(self, state: ReadingState) -> None:
        self._state = state
        self.ranges: list[PositionRange] = []  # what each page asked for

    async def total(self, conversation_id: UUID) -> int:
        return self._state.message_counts.get(conversation_id, 0)

    async def at_positions(self, conversation_id: UUID, positions: PositionRange) -> list[tuple[int, Message]]:
        self.ranges.append(positions)
        found = [
            (self._state.positions[message.id], message)
            for message in self._state.messages.values()
            if message.conversation_id == conversation_id
            and positions.first <= self._state.positions[message.id] <= positions.last
        ]
        return sorted(found, key=lambda item: item[0])


class InMemoryReadingUnitOfWork:
    def __init__(self, store: InMemoryReadingStore) -> None:
        self._store = store
        self._state: ReadingState | None = None

    async def __aenter__(self) -> InMemoryReadingUnitOfWork:
        self._state = copy.deepcopy(self._store.state)
        self.conversations = _Conversations(self._state)
        self.messages = _Messages(self._state)
        self.conversation_counters = _Counters(self._state)
        self.read_horizons = _Horizons(self._state)
        self.receipts = _Receipts(self._state)
        self.history = _History(self._state)
        self.events = InMemoryUserEventLog(self._state.log)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._state = None

    async def commit(self) -> None:
        await asyncio.sleep(0)  # let concurrent readers run, as they would against a database
        assert self._state is not None, "commit outside the unit of work"
        self._store.state = self._state
        self._store.commits += 1


class InMemoryReadingUnitOfWorkFactory:
    def __init__(self, store: InMemoryReadingStore | None = None) -> None:
        self.store = store if store is not None else InMemoryReadingStore()
        self.opened: list[InMemoryReadingUnitOfWork] = []

    def __call__(self) -> InMemoryReadingUnitOfWork:
        uow = InMemoryReadingUnitOfWork(self.store)
        self.opened.append(uow)
        return uow
