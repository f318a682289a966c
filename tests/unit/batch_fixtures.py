"""What the batch use case tests share: units of work and metrics that count, a connector that
answers as planned, and the people who send."""

from __future__ import annotations

from uuid import UUID

import pytest

from chat4all.domain.errors import PermanentDeliveryFailure, TransientDeliveryFailure
from tests.fakes import RecordingConnector


class CountingUnitsOfWork:
    """The hub's unit of work factory, counting the units of work and the member lookups."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.opened = 0
        self.member_lookups: list[list[UUID]] = []

    def __call__(self):
        self.opened += 1
        uow = self.inner()
        lookups = self.member_lookups
        get_many = uow.conversations.get_many

        async def counted(conversation_ids):
            lookups.append(list(conversation_ids))
            return await get_many(conversation_ids)

        uow.conversations.get_many = counted
        return uow


class PlannedConnector(RecordingConnector):
    """Fails the first `transient[recipient]` attempts to that recipient; `permanent` recipients always."""

    def __init__(self, name: str, transient: dict[UUID, int] | None = None, permanent: set[UUID] | None = None):
        super().__init__(name)
        self.transient = dict(transient or {})
        self.permanent = set(permanent or ())
        self.calls: list[list[UUID]] = []

    async def deliver_many(self, sends):
        self.calls.append([message.id for message, _ in sends])
        return await super().deliver_many(sends)

    async def deliver(self, message, recipient_id):
        self.attempts.append((message.id, recipient_id))
        if recipient_id in self.permanent:
            raise PermanentDeliveryFailure(f"{recipient_id} does not exist")
        if self.transient.get(recipient_id, 0) > 0:
            self.transient[recipient_id] -= 1
            raise TransientDeliveryFailure("connection reset")
        self.delivered.append((message.id, recipient_id))


@pytest.fixture
async def people(hub):
    return await hub.users("alice", "bob", "carol", "dave")
