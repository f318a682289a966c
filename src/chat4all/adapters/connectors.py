"""Mock WhatsApp and Instagram connectors: they log each delivery instead of calling a real API."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol
from uuid import UUID

from chat4all.application.ports import SendResult
from chat4all.domain.errors import PermanentDeliveryFailure, TransientDeliveryFailure
from chat4all.domain.messages import Message

log = logging.getLogger("chat4all.connectors")

SendKey = tuple[UUID, UUID]  # (message id, recipient id)
MOCK_CHANNELS = ("whatsapp", "instagram")


class SendLedger(Protocol):
    async def send_once(self, channel: str, message_id: UUID, recipient_id: UUID, send: Callable[[], None]) -> bool: ...

    async def send_new(self, channel: str, keys: Sequence[SendKey], send: Callable[[SendKey], None]) -> list[SendKey]:
        """Records the keys not recorded yet and calls `send` for each of them, in order, all in
        one transaction; returns those keys."""
        ...


class MockConnector:
    """Logs `Mensagem <id> enviada para o usuário <user> no <Channel>`.

    Like a provider API that honours idempotency keys, it sends each (channel, message,
    recipient) once: with a `ledger`, a redelivered request finds its key and sends nothing.
    `failure_rate` makes a share of attempts fail transiently (for demos and fault tests);
    recipients listed in `always_fail_recipients` fail on every attempt; with `fail_permanently`
    every attempt fails terminally (the provider refuses the message: not retried).
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
        fail_permanently: bool = False,
    ):
        self.name = name
        self.display_name = display_name
        self._ledger = ledger
        self._failure_rate = failure_rate
        self._always_fail = frozenset(always_fail_recipients)
        self._rng = rng or random.Random()
        self._fail_permanently = fail_permanently

    def _failure(self, recipient_id: UUID) -> TransientDeliveryFailure | PermanentDeliveryFailure | None:
        if self._fail_permanently:
            return PermanentDeliveryFailure(f"{self.display_name} refused the message (injected permanent failure)")
        if recipient_id in self._always_fail:
            return TransientDeliveryFailure(f"{self.display_name} rejected recipient {recipient_id}")
        if self._failure_rate and self._rng.random() < self._failure_rate:
            return TransientDeliveryFailure(f"{self.display_name} is temporarily unavailable (injected)")
        return None

    def _send(self, key: SendKey) -> None:
        log.info("Mensagem %s enviada para o usuário %s no %s", key[0], key[1], self.display_name)

    async def deliver(self, message: Message, recipient_id: UUID) -> None:
        failure = self._failure(recipient_id)
        if failure is not None:
            raise failure
        key = (message.id, recipient_id)
        if self._ledger is None:
            self._send(key)
        else:  # a key sent before a crash or redelivery is not sent again
            await self._ledger.send_once(self.name, message.id, recipient_id, lambda: self._send(key))

    async def deliver_many(self, sends: Sequence[tuple[Message, Sequence[UUID]]]) -> list[SendResult]:
        """Decides each attempt's (injected) failure first, then sends every key that got through
        with one ledger call: one transaction for the whole batch."""
        results: list[SendResult] = []
        keys: list[SendKey] = []
        for message, recipients in sends:
            reached = 0
            failure = None
            for recipient_id in recipients:
                failure = self._failure(recipient_id)
                if failure is not None:
                    break
                keys.append((message.id, recipient_id))
                reached += 1
            results.append(SendResult(reached, failure))
        if self._ledger is None:
            for key in keys:
                self._send(key)
        elif keys:
            await self._ledger.send_new(self.name, keys, self._send)
        return results


def mock_connectors(
    *,
    ledger: SendLedger | None = None,
    failure_rate: float = 0.0,
    always_fail_recipients: Collection[UUID] = (),
    failure_rates: Mapping[str, float] | None = None,
    failing_permanently: Collection[str] = (),
) -> dict[str, MockConnector]:
    """The mock channels; `failure_rates` (per channel) override `failure_rate` for the channels
    they name, and the channels in `failing_permanently` fail every attempt terminally."""
    rates = failure_rates or {}
    names = dict(zip(MOCK_CHANNELS, ("WhatsApp", "Instagram"), strict=True))
    return {
        name: MockConnector(
            name,
            display_name,
            ledger=ledger,
            failure_rate=rates.get(name, failure_rate),
            always_fail_recipients=always_fail_recipients,
            fail_permanently=name in failing_permanently,
        )
        for name, display_name in names.items()
    }
