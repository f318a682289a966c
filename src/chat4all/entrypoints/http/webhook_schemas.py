"""Wire formats of the webhook routes, and how the domain's webhooks become them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from msgspec import Meta, Struct

from chat4all.domain.webhooks import MAX_DESCRIPTION_LENGTH, MAX_URL_LENGTH, SUBSCRIBABLE, Webhook, WebhookDelivery

EventName = Annotated[str, Meta(max_length=64, examples=["message.status"])]


class WebhookCreate(Struct, forbid_unknown_fields=True):
    url: Annotated[str, Meta(max_length=MAX_URL_LENGTH, examples=["https://example.com/hooks/chat4all"])]
    events: Annotated[
        list[EventName],
        Meta(min_length=1, max_length=len(SUBSCRIBABLE), description=f"Any of {', '.join(SUBSCRIBABLE)}"),
    ]
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION_LENGTH)] = ""


class WebhookOut(Struct):
    id: UUID
    url: str
    events: list[str]
    description: str
    created_at: datetime
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: Annotated[str | None, Meta(description="Why deliveries stopped (the endpoint failed for 24 h)")]


class WebhookWithSecret(WebhookOut):
    secret: Annotated[str, Meta(description="Signs every delivery (Standard Webhooks); shown only here")]


class WebhookList(Struct):
    webhooks: list[WebhookOut]


class AttemptOut(Struct):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryOut(Struct):
    id: Annotated[UUID, Meta(description="The `webhook-id` header of every attempt")]
    seq: Annotated[int, Meta(description="The event's seq in the owner's event log")]
    event_type: str
    state: Annotated[str, Meta(description="pending, succeeded, or failed (given up after 24 h)")]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    history: list[AttemptOut]


class DeliveryPage(Struct):
    deliveries: list[DeliveryOut]
    total: int
    limit: int
    offset: int


def webhook_fields(webhook: Webhook) -> dict[str, object]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": sorted(kind.value for kind in webhook.events),
        "description": webhook.description,
        "created_at": webhook.created_at,
        "enabled": webhook.enabled,
        "disabled_at": webhook.disabled_at,
        "disabled_reason": webhook.disabled_reason,
    }


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(**webhook_fields(webhook))  # type: ignore[arg-type]


def with_secret(webhook: Webhook) -> WebhookWithSecret:
    return WebhookWithSecret(**webhook_fields(webhook), secret=webhook.secret)  # type: ignore[arg-type]


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        seq=delivery.seq,
        event_type=delivery.event_type,
        state=delivery.state.value,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
        history=[
            AttemptOut(each.attempted_at, each.status_code, each.latency_ms, each.error) for each in delivery.history
        ],
    )
