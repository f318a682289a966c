"""In-memory webhook adapters for the unit tests of the webhook use cases."""

from __future__ import annotations

import asyncio
from datetime import datetime
from uuid import UUID

from chat4all.application.ports.webhooks import AttemptOutcome, ClaimedDelivery, HttpAnswer
from chat4all.domain.webhooks import Webhook


class InMemoryWebhookStore:
    """Keeps webhooks; hands out `due` claims as given, and records outcomes."""

    def __init__(self) -> None:
        self.webhooks: dict[UUID, Webhook] = {}
        self.due: dict[UUID, list[ClaimedDelivery]] = {}
        self.recorded: list[AttemptOutcome] = []

    async def add(self, webhook: Webhook) -> None:
        self.webhooks[webhook.id] = webhook

    async def count_owned(self, owner_id: UUID) -> int:
        return len([each for each in self.webhooks.values() if each.owner_id == owner_id])

    async def last_seq(self, owner_id: UUID) -> int:
        return 7

    async def due_webhooks(self, now: datetime, skip, limit: int) -> list[UUID]:
        return [webhook for webhook, claims in self.due.items() if claims and webhook not in skip][:limit]

    async def claim(self, webhook_id: UUID, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedDelivery]:
        taken, self.due[webhook_id] = self.due[webhook_id][:limit], self.due[webhook_id][limit:]
        return taken

    async def record(self, outcome: AttemptOutcome, now: datetime) -> None:
        self.recorded.append(outcome)


class StaticResolver:
    def __init__(self, addresses: dict[str, list[str]]) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int) -> list[str]:
        return self.addresses.get(host, [])


class HeldTransport:
    """Records each POST and answers `status` once `release` is set."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []
        self.release = asyncio.Event()

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> HttpAnswer:
        self.posts.append((url, body, headers))
        await self.release.wait()
        return HttpAnswer(self.status, None, 1)


class FixedSigner:
    def new_secret(self) -> str:
        return "whsec_c2VjcmV0"

    def sign(self, secret: str, message_id: str, timestamp: datetime, body: bytes) -> str:
        return f"v1,{message_id}"
