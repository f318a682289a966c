"""Read state: what a newly accepted message adds to it, and members marking conversations read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.application.ports import Clock, EventNotifier, ReadMark, UnitOfWork, UnitOfWorkFactory
from chat4all.domain.conversations import Conversation
from chat4all.domain.errors import NotFound
from chat4all.domain.event_data import conversation_read, message_created, message_status
from chat4all.domain.events import PendingEvent
from chat4all.domain.messages import Message
from chat4all.domain.receipts import MessageRef, ReadHorizon


async def store_new_message(uow: UnitOfWork, conversation: Conversation, message: Message) -> set[UUID]:
    """Stores an accepted message with what it adds to the read state, in one unit of work: its
    position (from the conversation's counter, whose row lock comes first), a receipt and +1
    unread for each recipient, and `message.created` for every member. Raises DuplicateMessage
    (the unit of work must then be dropped) when the id exists. Returns the users to wake once
    committed."""
    position = await uow.conversation_counters.record_message(conversation.id, message.id, message.created_at)
    await uow.messages.add(message, position)
    recipients = conversation.recipients_of(message.sender_id, message.recipient_id)
    await uow.receipts.add(message, position, recipients)
    await uow.read_horizons.count_new(conversation.id, sorted(recipients), position)
    events = message_created(message, conversation)
    await uow.events.append(events)
    return {event.user_id for event in events}


@attrs.frozen
class ReadOutcome:
    horizon: ReadHorizon
    advanced: bool


@attrs.define
class MarkConversationRead:
    """A member has read a conversation up to one of its messages (`up_to`).

    Rules: members only; the horizon only advances (an older `up_to` answers as usual and changes
    nothing); the member's receipts up to it become read, their unread count drops by as many;
    every member hears `conversation.read`; a message now read by all its recipients becomes `read`
    (if its channels delivered it) and its sender hears `message.status`.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    notifier: EventNotifier | None = None

    async def execute(self, caller: UUID, conversation_id: UUID, up_to: UUID) -> ReadOutcome:
        async with self.uow() as uow:
            conversation = await _conversation_of_member(uow, caller, conversation_id)
            target = await self._target(uow, conversation_id, up_to)
            horizon = await uow.read_horizons.get(conversation_id, caller)
            if horizon.covers(target.position):
                return ReadOutcome(horizon, advanced=False)
            now = self.clock.now()
            marks = await uow.receipts.mark_read(conversation_id, caller, after=horizon.position, up_to=target.position, at=now)
            advanced = horizon.advance(target, now, [mark.position for mark in marks])
            assert advanced is not None
            await uow.read_horizons.save(advanced)
            events = conversation_read(conversation, advanced)
            events += await _read_by_all(uow, [mark for mark in marks if mark.read_by_all], now)
            await uow.events.append(events)
            await uow.commit()
        if self.notifier is not None:
            self.notifier.notify({event.user_id for event in events})
        return ReadOutcome(advanced, advanced=True)

    @staticmethod
    async def _target(uow: UnitOfWork, conversation_id: UUID, up_to: UUID) -> MessageRef:
        located = await uow.receipts.locate(up_to)
        if located is None or located.conversation_id != conversation_id:
            # The same answer whether the message is elsewhere or nowhere: ids of other conversations stay private.
            raise NotFound("no such message in this conversation", code="message_not_found")
        return MessageRef(located.message_id, located.position)


async def _conversation_of_member(uow: UnitOfWork, caller: UUID, conversation_id: UUID) -> Conversation:
    conversation = await uow.conversations.get(conversation_id)
    if conversation is None:
        raise NotFound("no such conversation", code="conversation_not_found")
    conversation.require_member(caller)
    return conversation


async def _read_by_all(uow: UnitOfWork, marks: Sequence[ReadMark], now: datetime) -> list[PendingEvent]:
    """Messages that this read made read by all their recipients: recorded (`update_many` stores
    `read_by_all_at` with the status), and their senders told."""
    if not marks:
        return []
    found = await uow.messages.get_many([mark.message_id for mark in marks], for_update=True)
    changed = [message for message in found.values() if message.record_read_by_all(now)]
    await uow.messages.update_many(changed)
    return [event for message in changed for event in message_status(message, now)]
