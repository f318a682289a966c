"""Outbound webhooks: where endpoints and their deliveries are kept, and how a delivery is sent
(see `chat4all.application.webhooks`, `webhook_feed` and `webhook_sender`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

import attrs

from chat4all.domain.events import UserEvent
from chat4all.domain.webhooks import DeliveryAttempt, Webhook, WebhookDelivery


@attrs.frozen
class AttemptOutcome:
    """What one attempt changes, written in one transaction: the attempt is recorded, the delivery
    takes its new state, and the endpoint its failing streak (or is disabled)."""

    delivery_id: UUID
    webhook_id: UUID
    attempt: DeliveryAttempt
    succeeded: bool
    next_attempt_at: datetime | None  # None on failure: given up
    disable_reason: str | None = None


@attrs.frozen
class EventRange:
    owner_id: UUID
    after: int
    up_to: int


@attrs.frozen
class CursorMove:
    webhook_id: UUID
    cursor: int
    to: int
    deliveries: Sequence[WebhookDelivery]


@attrs.frozen
class ClaimedDelivery:
    """A due delivery this process holds until `lease_until`, with what it needs to send it."""

    delivery: WebhookDelivery
    url: str
    secret: str
    failing_since: datetime | None


class WebhookStore(Protocol):
    async def add(self, webhook: Webhook) -> None: ...

    async def count_owned(self, owner_id: UUID) -> int: ...

    async def owned(self, owner_id: UUID) -> list[Webhook]: ...

    async def get(self, owner_id: UUID, webhook_id: UUID) -> Webhook | None: ...

    async def remove(self, owner_id: UUID, webhook_id: UUID) -> bool: ...

    async def set_secret(self, owner_id: UUID, webhook_id: UUID, secret: str) -> bool: ...

    async def disable(self, owner_id: UUID, webhook_id: UUID, now: datetime, reason: str) -> bool: ...

    async def enable(self, owner_id: UUID, webhook_id: UUID, now: datetime) -> bool:
        """Enables it again, clears its failing streak, and makes its pending deliveries due now."""
        ...

    async def last_seq(self, owner_id: UUID) -> int:
        """The newest seq of the user's event log (0: none yet)."""
        ...

    async def behind(self, limit: int) -> list[tuple[Webhook, int]]:
        """Enabled webhooks whose owner's log has events after their cursor, each with the log's last seq."""
        ...

    async def events_in(self, ranges: Sequence[EventRange]) -> list[list[UserEvent]]:
        """For each range, its owner's events with `after` < seq <= `up_to`, ascending (one read)."""
        ...

    async def advance(self, moves: Sequence[CursorMove]) -> int:
        """Stores each move's deliveries and moves its cursor, all in one transaction; a move whose
        cursor is no longer at `cursor` (another process fed it first) changes nothing. A delivery
        for a (webhook, seq) already stored is skipped. Returns how many moves were made."""
        ...

    async def claim(
        self, now: datetime, lease_until: datetime, skip: Sequence[UUID], per_webhook: int, limit: int
    ) -> list[ClaimedDelivery]:
        """Takes due deliveries of enabled webhooks but those in `skip`, at most `per_webhook` of
        each and `limit` in all, until `lease_until`: no other process claims them before then
        (on PostgreSQL, `FOR UPDATE SKIP LOCKED`)."""
        ...

    async def release(self, delivery_ids: Sequence[UUID]) -> None:
        """Ends the leases of claimed deliveries this process will not attempt after all."""
        ...

    async def record(self, outcomes: Sequence[AttemptOutcome], now: datetime) -> None:
        """The attempts, the deliveries' new states and the endpoints' streaks, in one transaction."""
        ...

    async def deliveries(self, webhook_id: UUID, limit: int, offset: int) -> tuple[list[WebhookDelivery], int]:
        """Newest first, each with its attempts; and how many there are."""
        ...

    async def retry(self, webhook_id: UUID, delivery_id: UUID, now: datetime) -> WebhookDelivery | None:
        """Makes the delivery pending and due now, with a fresh schedule (None: no such delivery)."""
        ...

    async def purge_before(self, before: datetime, limit: int) -> int:
        """Drops up to `limit` deliveries created before `before` that are no longer pending."""
        ...


@attrs.frozen
class HttpAnswer:
    status_code: int | None  # None: no answer (refused, timed out, ...)
    error: str | None
    latency_ms: int


class WebhookTransport(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> HttpAnswer:
        """POSTs, following no redirect; never raises for a network failure (it is the answer's `error`)."""
        ...


class AddressResolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to now (empty: it does not resolve)."""
        ...


class WebhookSigner(Protocol):
    def new_secret(self) -> str:
        """A new signing secret, `whsec_<base64>`."""
        ...

    def sign(self, secret: str, message_id: str, timestamp: datetime, body: bytes) -> str:
        """The `webhook-signature` header value: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
        ...
