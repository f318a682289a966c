"""Mock WhatsApp and Instagram connectors: they log each delivery instead of calling a real API."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection
from typing import Protocol
from uuid import UUID

from chat4all.domain.errors import TransientDeliveryFailure
from chat4all.domain.messages import Message

log = logging.getLogger("chat4all.connectors")


class SendLedger(Protocol):
    async def send_once(self, channel: str, message_id: UUID, recipient_id: UUID, send: Callable[[], None]) -> bool: ...


class MockConnector:
    """Logs `Mensagem <id> enviada para o usuário <user> no <Channel>`.

    Like a provider API that honours idempotency keys, it sends each (channel, message,
    recipient) once: with a `ledger`, a redelivered request finds its key and sends nothing.
    `failure_rate` makes a share of attempts fail transiently (for demos and fault tests);
    recipients listed in `always_fail_recipients` fail on every attempt.
    """

    def __init__(
        self,
        name: str,
        display_name: str,
        *,
        ledger: SendLedger | None = None,
        failure_rate: float = 0.0,
        always_fail_recipients: Collection[UUID] = (),
        rng: random.Random | None = None,
    ):
        self.name = name
        self.display_name = display_name
        self._ledger = ledger
        self._failure_rate = failure_rate
        self._always_fail = frozenset(always_fail_recipients)
        self._rng = rng or random.Random()

    async def deliver(self, message: Message, recipient_id: UUID) -> None:
        if recipient_id in self._always_fail:
            raise TransientDeliveryFailure(f"{self.display_name} rejected recipient {recipient_id}")
        if self._failure_rate and self._rng.random() < self._failure_rate:
            raise TransientDeliveryFailure(f"{self.display_name} is temporarily unavailable (injected)")
        def send() -> None:
            log.info("Mensagem %s enviada para o usuário %s no %s", message.id, recipient_id, self.display_name)

        if self._ledger is None:
            send()
        else:  # a key sent before a crash or redelivery is not sent again
            await self._ledger.send_once(self.name, message.id, recipient_id, send)


def mock_connectors(
    *, ledger: SendLedger | None = None, failure_rate: float = 0.0, always_fail_recipients: Collection[UUID] = ()
) -> dict[str, MockConnector]:
    options = {"ledger": ledger, "failure_rate": failure_rate, "always_fail_recipients": always_fail_recipients}
    connectors = [MockConnector("whatsapp", "WhatsApp", **options), MockConnector("instagram", "Instagram", **options)]
    return {connector.name: connector for connector in connectors}
