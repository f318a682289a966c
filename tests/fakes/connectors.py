from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from chat4all.application.ports import SendResult
from chat4all.domain.errors import PermanentDeliveryFailure, TransientDeliveryFailure
from chat4all.domain.messages import Message


class RecordingConnector:
    """A channel connector that records every delivery; it can fail transiently N times or for good."""

    def __init__(self, name: str, display_name: str | None = None) -> None:
        self.name = name
        self.display_name = display_name or name.capitalize()
        self.attempts: list[tuple[UUID, UUID]] = []
        self.delivered: list[tuple[UUID, UUID]] = []
        self._transient_left = 0
        self._permanent: str | None = None
        self._rejected: set[UUID] = set()

    def fail_transiently(self, times: int) -> None:
        self._transient_left = times

    def fail_permanently(self, detail: str = "recipient rejected the message") -> None:
        self._permanent = detail

    def reject(self, recipient_id: UUID) -> None:
        """Every delivery to this recipient fails for good (an unknown number, say)."""
        self._rejected.add(recipient_id)

    def recover(self) -> None:
        self._transient_left = 0
        self._permanent = None
        self._rejected.clear()

    async def deliver(self, message: Message, recipient_id: UUID) -> None:
        self.attempts.append((message.id, recipient_id))
        if self._permanent is not None:
            raise PermanentDeliveryFailure(self._permanent)
        if recipient_id in self._rejected:
            raise PermanentDeliveryFailure(f"{self.name} does not know recipient {recipient_id}")
        if self._transient_left > 0:
            self._transient_left -= 1
            raise TransientDeliveryFailure(f"{self.name} is temporarily unavailable")
        self.delivered.append((message.id, recipient_id))

    def recipients_of(self, message_id: UUID) -> list[UUID]:
        return [recipient for delivered_id, recipient in self.delivered if delivered_id == message_id]

    async def deliver_many(self, sends: Sequence[tuple[Message, Sequence[UUID]]]) -> list[SendResult]:
        """One `deliver` per recipient, in order, stopping at a message's first failure."""
        results = []
        for message, recipients in sends:
            reached = 0
            failure: TransientDeliveryFailure | PermanentDeliveryFailure | None = None
            for recipient_id in recipients:
                try:
                    await self.deliver(message, recipient_id)
                except (TransientDeliveryFailure, PermanentDeliveryFailure) as error:
                    failure = error
                    break
                reached += 1
            results.append(SendResult(reached, failure))
        return results
