from __future__ import annotations

from uuid import UUID

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

    def fail_transiently(self, times: int) -> None:
        self._transient_left = times

    def fail_permanently(self, detail: str = "recipient rejected the message") -> None:
        self._permanent = detail

    def recover(self) -> None:
        self._transient_left = 0
        self._permanent = None

    async def deliver(self, message: Message, recipient_id: UUID) -> None:
        self.attempts.append((message.id, recipient_id))
        if self._permanent is not None:
            raise PermanentDeliveryFailure(self._permanent)
        if self._transient_left > 0:
            self._transient_left -= 1
            raise TransientDeliveryFailure(f"{self.name} is temporarily unavailable")
        self.delivered.append((message.id, recipient_id))

    def recipients_of(self, message_id: UUID) -> list[UUID]:
        return [recipient for delivered_id, recipient in self.delivered if delivered_id == message_id]
