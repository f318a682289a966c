"""In-memory webhook adapters for the unit tests of the webhook use cases."""

from __future__ import annotations

import asyncio
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.application.ports.webhooks import AttemptOutcome, ClaimedDelivery, CursorMove, EventRange, HttpAnswer
from chat4all.domain.events import UserEvent
from chat4all.domain.webhooks import Webhook, WebhookDelivery


class InMemoryWebhookStore:
    """Keeps webhooks and their owners' event logs (`logs`); feeds as the SQL store does, hands out
    `due` claims as given, and records outcomes."""

    def __init__(self) -> None:
        self.webhooks: dict[UUID, Webhook] = {}
        self.logs: dict[UUID, list[UserEvent]] = {}
        self.fed: list[WebhookDelivery] = []
        self.rounds = 0  # calls of `behind`: one per feed round
        self.due: dict[UUID, list[ClaimedDelivery]] = {}
        self.recorded: list[AttemptOutcome] = []
        self.released: list[UUID] = []

    async def add(self, webhook: Webhook) -> None:
        self.webhooks[webhook.id] = webhook

    async def count_owned(self, owner_id: UUID) -> int:
        return len([each for each in self.webhooks.values() if each.owner_id == owner_id])

    async def last_seq(self, owner_id: UUID) -> int:
        return 7

    async def behind(self, limit: int) -> list[tuple[Webhook, int]]:
        self.rounds += 1
        lasts = {owner: events[-1].seq for owner, events in self.logs.items() if events}
        found = [(each, lasts[each.owner_id]) for each in self.webhooks.values() if lasts.get(each.owner_id, 0) > each.cursor]
        return found[:limit]

    async def events_in(self, ranges: list[EventRange]) -> list[list[UserEvent]]:
        return [[e for e in self.logs.get(each.owner_id, []) if each.after < e.seq <= each.up_to] for each in ranges]

    async def advance(self, moves: list[CursorMove]) -> int:
        for move in moves:
            self.webhooks[move.webhook_id] = attrs.evolve(self.webhooks[move.webhook_id], cursor=move.to)
            self.fed.extend(move.deliveries)
        return len(moves)

    async def claim(self, now: datetime, lease_until: datetime, skip, per_webhook: int, limit: int):
        taken: list[ClaimedDelivery] = []
        for webhook_id, claims in self.due.items():
            if webhook_id not in skip:
                mine, self.due[webhook_id] = claims[:per_webhook], claims[per_webhook:]
                taken += mine
        return taken[:limit]

    async def record(self, outcomes, now: datetime) -> None:
        self.recorded.extend(outcomes)

    async def release(self, delivery_ids) -> None:
        self.released.extend(delivery_ids)


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
