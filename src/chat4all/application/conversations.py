from __future__ import annotations

from uuid import UUID

import attrs

from chat4all.application.errors import DuplicateKey
from chat4all.application.ports import Clock, EventNotifier, IdGenerator, UnitOfWork, UnitOfWorkFactory
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType, private_pair_key
from chat4all.domain.errors import InvalidInput, NotFound
from chat4all.domain.event_data import conversation_created
from chat4all.domain.messages import Message
from chat4all.domain.paging import check_page
from chat4all.domain.quotas import UserQuotas


@attrs.frozen
class ConversationCreated:
    conversation: Conversation
    created: bool


@attrs.define
class CreateConversation:
    """Starts a conversation; a private one that already exists for the same pair is returned instead.

    Starting one counts against the caller's conversations-per-hour quota (returning an existing
    private one does not). The count and the insert happen in one transaction under a lock on the
    caller's count, so concurrent requests cannot start more than the quota allows.

    Every member gets `conversation.created` in their event log, committed with the conversation;
    `notifier` wakes their waiting readers after the commit."""

    uow: UnitOfWorkFactory
    ids: IdGenerator
    clock: Clock
    quotas: UserQuotas = attrs.field(factory=UserQuotas)
    notifier: EventNotifier | None = None

    async def execute(
        self, *, caller: UUID, type: ConversationType, members: list[UUID], metadata: ConversationMetadata
    ) -> ConversationCreated:
        now = self.clock.now()
        conversation = Conversation.start(
            conversation_id=self.ids.new_id(), type=type, members=members, creator=caller, metadata=metadata, now=now
        )
        async with self.uow() as uow:
            await _require_known_members(uow, conversation)
            if type is ConversationType.PRIVATE:
                existing = await uow.conversations.get_private(private_pair_key(conversation.members))
                if existing is not None:
                    return ConversationCreated(existing, created=False)
            recent = await uow.conversations.started_since(caller, now - self.quotas.conversation_window)
            self.quotas.check_new_conversation(recent, now)
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


async def _require_known_members(uow: UnitOfWork, conversation: Conversation) -> None:
    unknown = set(conversation.members) - await uow.users.existing_ids(list(conversation.members))
    if unknown:
        listed = ", ".join(sorted(str(user_id) for user_id in unknown))
        raise InvalidInput(f"unknown users: {listed}", code="unknown_users", field_errors={"members": [f"unknown: {listed}"]})


@attrs.frozen
class ConversationSummary:
    """A conversation as a chat client lists it: how many of the caller's messages are unread and
    the last message, both kept on write (no count or scan per request)."""

    conversation: Conversation
    unread_count: int
    last_message: Message | None


@attrs.define
class ViewConversations:
    uow: UnitOfWorkFactory

    async def list(self, caller: UUID, *, limit: int, offset: int) -> tuple[list[Conversation], int]:
        check_page(limit, offset)
        async with self.uow() as uow:
            return await uow.conversations.list_for_member(caller, limit=limit, offset=offset)

    async def overview(self, caller: UUID, *, limit: int, offset: int) -> tuple[list[ConversationSummary], int]:
        """The caller's conversations, most recent activity first, with their read state."""
        check_page(limit, offset)
        async with self.uow() as uow:
            found, total = await uow.conversations.list_for_member(caller, limit=limit, offset=offset)
            ids = [conversation.id for conversation in found]
            horizons = await uow.read_horizons.for_member(caller, ids)
            latest = await uow.history.latest(ids)
        summaries = [
            ConversationSummary(
                conversation,
                horizons[conversation.id].unread_count if conversation.id in horizons else 0,
                latest.get(conversation.id),
            )
            for conversation in found
        ]
        return summaries, total

    async def get(self, caller: UUID, conversation_id: UUID) -> Conversation:
        async with self.uow() as uow:
            conversation = await uow.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound("no such conversation", code="conversation_not_found")
        conversation.require_member(caller)
        return conversation


@attrs.define
class LeaveConversation:
    """A member leaves a group. From the commit on they are an outsider: they cannot read it or send
    into it, and no delivery starts for them (a group's members are read on every send and every
    delivery, see `SendMessage` and `DeliverMessage`). What was delivered to them stays theirs."""

    uow: UnitOfWorkFactory

    async def execute(self, caller: UUID, conversation_id: UUID) -> None:
        async with self.uow() as uow:
            conversation = await uow.conversations.get(conversation_id)
            if conversation is None:
                raise NotFound("no such conversation", code="conversation_not_found")
            conversation.leave(caller)
            await uow.conversations.remove_member(conversation_id, caller)
            await uow.commit()
