from __future__ import annotations

from uuid import UUID

import attrs

from chat4all.application.errors import DuplicateKey
from chat4all.application.ports import Clock, EventNotifier, IdGenerator, UnitOfWorkFactory
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType, private_pair_key
from chat4all.domain.errors import InvalidInput, NotFound
from chat4all.domain.event_data import conversation_created


@attrs.frozen
class ConversationCreated:
    conversation: Conversation
    created: bool


@attrs.define
class CreateConversation:
    """Starts a conversation; a private one that already exists for the same pair is returned instead.
    Every member gets `conversation.created` in their event log, committed with the conversation;
    `notifier` wakes their waiting readers after the commit."""

    uow: UnitOfWorkFactory
    ids: IdGenerator
    clock: Clock
    notifier: EventNotifier | None = None

    async def execute(
        self, *, caller: UUID, type: ConversationType, members: list[UUID], metadata: ConversationMetadata
    ) -> ConversationCreated:
        conversation = Conversation.start(
            conversation_id=self.ids.new_id(),
            type=type,
            members=members,
            creator=caller,
            metadata=metadata,
            now=self.clock.now(),
        )
        async with self.uow() as uow:
            unknown = set(conversation.members) - await uow.users.existing_ids(list(conversation.members))
            if unknown:
                listed = ", ".join(sorted(str(user_id) for user_id in unknown))
                raise InvalidInput(f"unknown users: {listed}", code="unknown_users", field_errors={"members": [f"unknown: {listed}"]})
            if type is ConversationType.PRIVATE:
                existing = await uow.conversations.get_private(private_pair_key(conversation.members))
                if existing is not None:
                    return ConversationCreated(existing, created=False)
            try:
                await uow.conversations.add(conversation)
                await uow.events.append(conversation_created(conversation))
                await uow.commit()
            except DuplicateKey:
                pass  # another request created the same private pair first
            else:
                if self.notifier is not None:
                    self.notifier.notify(conversation.members)
                return ConversationCreated(conversation, created=True)
        async with self.uow() as uow:
            existing = await uow.conversations.get_private(private_pair_key(conversation.members))
        if existing is None:
            raise RuntimeError("private conversation vanished after a duplicate-key clash")
        return ConversationCreated(existing, created=False)


@attrs.define
class ViewConversations:
    uow: UnitOfWorkFactory

    async def list(self, caller: UUID, *, limit: int, offset: int) -> tuple[list[Conversation], int]:
        async with self.uow() as uow:
            return await uow.conversations.list_for_member(caller, limit=limit, offset=offset)

    async def get(self, caller: UUID, conversation_id: UUID) -> Conversation:
        async with self.uow() as uow:
            conversation = await uow.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound("no such conversation", code="conversation_not_found")
        conversation.require_member(caller)
        return conversation
