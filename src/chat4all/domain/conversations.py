from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.domain.errors import Conflict, Forbidden, InvalidInput

MAX_GROUP_MEMBERS = 100
MIN_GROUP_MEMBERS = 3
MAX_NAME_LENGTH = 128
MAX_DESCRIPTION_LENGTH = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ConversationType(str, enum.Enum):
    PRIVATE = "private"
    GROUP = "group"


@attrs.frozen
class ConversationMetadata:
    name: str | None = None
    description: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.name is not None and len(self.name) > MAX_NAME_LENGTH:
            raise InvalidInput("metadata.name is too long", field_errors={"metadata.name": [f"at most {MAX_NAME_LENGTH} characters"]})
        if self.description is not None and len(self.description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidInput(
                "metadata.description is too long",
                field_errors={"metadata.description": [f"at most {MAX_DESCRIPTION_LENGTH} characters"]},
            )
        if self.name is not None and _CONTROL_CHARS.search(self.name):
            raise InvalidInput(
                "metadata.name must not contain control characters",
                field_errors={"metadata.name": ["no control characters"]},
            )
        if self.description is not None and "\x00" in self.description:
            raise InvalidInput(
                "metadata.description must not contain NUL characters",
                field_errors={"metadata.description": ["no NUL characters"]},
            )


def private_pair_key(members: Iterable[UUID]) -> str:
    """The same two people always share one private conversation; this key finds it."""
    return ":".join(sorted(str(member) for member in members))


@attrs.define(eq=False)
class Conversation:
    id: UUID
    type: ConversationType
    members: tuple[UUID, ...]
    metadata: ConversationMetadata
    created_at: datetime
    last_activity_at: datetime
    # Who started it: counted against their conversations-per-hour quota. None for conversations
    # stored before this was recorded.
    created_by: UUID | None = None

    @classmethod
    def start(
        cls,
        *,
        conversation_id: UUID,
        type: ConversationType,
        members: list[UUID],
        creator: UUID,
        metadata: ConversationMetadata,
        now: datetime,
    ) -> Conversation:
        distinct = tuple(dict.fromkeys(members))
        if len(distinct) != len(members):
            raise InvalidInput("members must be distinct", field_errors={"members": ["duplicate user ids"]})
        if type is ConversationType.PRIVATE and len(distinct) != 2:
            raise InvalidInput(
                "a private conversation has exactly 2 members", field_errors={"members": ["exactly 2 members"]}
            )
        if type is ConversationType.GROUP and not MIN_GROUP_MEMBERS <= len(distinct) <= MAX_GROUP_MEMBERS:
            raise InvalidInput(
                f"a group has {MIN_GROUP_MEMBERS}-{MAX_GROUP_MEMBERS} members",
                field_errors={"members": [f"{MIN_GROUP_MEMBERS}-{MAX_GROUP_MEMBERS} members"]},
            )
        if creator not in distinct:
            raise Forbidden("you can only create conversations you are a member of", code="not_a_member")
        return cls(conversation_id, type, distinct, metadata, now, now, created_by=creator)

    @property
    def private_key(self) -> str | None:
        return private_pair_key(self.members) if self.type is ConversationType.PRIVATE else None

    def has_member(self, user_id: UUID) -> bool:
        return user_id in self.members

    def require_member(self, user_id: UUID) -> None:
        if not self.has_member(user_id):
            raise Forbidden("you are not a member of this conversation", code="not_a_member")

    def leave(self, user_id: UUID) -> None:
        """Takes a member out of a group. A group may shrink below the members it needs to start,
        down to none: it is then kept, with its messages, and nobody can reach it.

        A private conversation is its pair's for good: leaving it would only hide it until either
        of the two starts it again, which returns this same conversation."""
        self.require_member(user_id)
        if self.type is ConversationType.PRIVATE:
            raise Conflict("a private conversation cannot be left", code="cannot_leave_private")
        self.members = tuple(member for member in self.members if member != user_id)

    def recipients_of(self, sender: UUID, to: UUID | None) -> tuple[UUID, ...]:
        """Who a message gets delivered to: `to` if it is (still) a member, else every member but the sender."""
        if to is not None:
            return (to,) if to in self.members else ()
        return tuple(member for member in self.members if member != sender)
