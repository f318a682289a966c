"""Outbound webhooks: which URLs a webhook may call, which events it takes, and when a failed
delivery is tried again.

A webhook belongs to the user who made it and receives the events of that user's log (the same
events and `seq` as the live transports), those of the types it chose. Each event becomes one
delivery, whose id is the `webhook-id` header of every attempt (receivers deduplicate on it).

Retries: an attempt succeeds on a 2xx answer within `ATTEMPT_TIMEOUT`. After a failure the next
attempt comes `RETRY_DELAYS` later (5 s, 30 s, 2 min, 10 min, 30 min, 1 h, then every 2 h), each
delay stretched or shrunk by up to `JITTER` so that deliveries that failed together do not all
come back together. A delivery whose next attempt would fall more than `GIVE_UP_AFTER` (24 h)
after its first is given up, and so is its endpoint: it is disabled, with the reason, until its
owner enables it again. An endpoint that has answered nothing but failures for 24 h is disabled too.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

import attrs

from chat4all.domain.errors import InvalidInput
from chat4all.domain.events import EventType

ATTEMPT_TIMEOUT = timedelta(seconds=10)
RETRY_DELAYS = tuple(timedelta(seconds=seconds) for seconds in (5, 30, 120, 600, 1800, 3600))
LATER_DELAY = timedelta(hours=2)
GIVE_UP_AFTER = timedelta(hours=24)
JITTER = 0.1  # a delay is its base plus or minus up to 10 %
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
MAX_WEBHOOKS_PER_USER = 20
SUBSCRIBABLE = tuple(kind for kind in EventType if kind.is_stored)
# Cloud metadata services that sit on ordinary-looking addresses (most are link-local anyway).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address) for address in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
)


class DeliveryState(str, enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # given up after its schedule; a manual retry sends it again


def retry_delay(failures: int, jitter: float) -> timedelta:
    """The wait after the `failures`-th failed attempt (1 = the first); `jitter` in [-1, 1]."""
    if failures < 1:
        raise ValueError(f"failures starts at 1, got {failures}")
    if not -1.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is within [-1, 1], got {jitter}")
    base = RETRY_DELAYS[failures - 1] if failures <= len(RETRY_DELAYS) else LATER_DELAY
    return base * (1 + JITTER * jitter)


def succeeded(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


@attrs.frozen
class AfterFailure:
    """What a failed attempt changes: the delivery's next attempt (None: given up), and the reason
    to disable its endpoint (None: it stays enabled)."""

    next_attempt_at: datetime | None
    disable_reason: str | None


def after_failure(
    *, failures: int, first_attempt_at: datetime, failing_since: datetime, now: datetime, jitter: float, error: str
) -> AfterFailure:
    """`failures` counts this attempt; `failing_since`: when the endpoint's failures began (its
    last success, if any, came before)."""
    next_attempt_at = now + retry_delay(failures, jitter)
    if next_attempt_at - first_attempt_at > GIVE_UP_AFTER:
        return AfterFailure(None, f"no delivery succeeded for 24 h; last error: {error}")
    if now - failing_since >= GIVE_UP_AFTER:
        return AfterFailure(next_attempt_at, f"every attempt failed for 24 h; last error: {error}")
    return AfterFailure(next_attempt_at, None)


def check_url(url: str, *, allow_insecure: bool) -> tuple[str, int]:
    """The host and port a webhook URL calls; HTTPS only unless `allow_insecure`."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url is longer than {MAX_URL_LENGTH} characters", field_errors={"url": ["too long"]})
    if any(ord(character) < 33 or ord(character) == 127 for character in url):
        raise InvalidInput("url must not contain spaces or control characters", field_errors={"url": ["invalid"]})
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(f"url is not a valid URL: {error}", field_errors={"url": ["invalid"]}) from None
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in schemes:
        raise InvalidInput(
            f"url must use {' or '.join(schemes)}", code="webhook_url_refused", field_errors={"url": ["scheme"]}
        )
    if not parts.hostname:
        raise InvalidInput("url has no host", field_errors={"url": ["no host"]})
    if parts.username or parts.password:
        raise InvalidInput("url must not carry credentials", field_errors={"url": ["credentials"]})
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused_address(address: str) -> str | None:
    """Why a webhook may not call `address` (None: it may): anything but a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    return None if ip.is_global else "not a public address"


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    """Refuses a host unless every address it resolves to is public."""
    found = list(addresses)
    if not found:
        raise InvalidInput(f"{host} does not resolve", code="webhook_url_refused", field_errors={"url": ["unresolved"]})
    for address in found:
        if (reason := refused_address(address)) is not None:
            raise InvalidInput(
                f"{host} resolves to {address}, {reason}; webhooks call public addresses only",
                code="webhook_url_refused",
                field_errors={"url": ["private address"]},
            )


def event_types(names: Iterable[str]) -> frozenset[EventType]:
    wanted = list(names)
    known = {kind.value: kind for kind in SUBSCRIBABLE}
    unknown = sorted(name for name in wanted if name not in known)
    if unknown or not wanted:
        allowed = ", ".join(known)
        detail = f"unknown event types {', '.join(unknown)}" if unknown else "events must name at least one type"
        raise InvalidInput(f"{detail}; the types are {allowed}", field_errors={"events": [detail]})
    return frozenset(known[name] for name in wanted)


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(
            f"description is longer than {MAX_DESCRIPTION_LENGTH} characters",
            field_errors={"description": ["too long"]},
        )
    if "\x00" in description:
        raise InvalidInput("description must not contain NUL characters", field_errors={"description": ["invalid"]})
    return description


@attrs.frozen
class Webhook:
    id: UUID
    owner_id: UUID
    url: str
    events: frozenset[EventType]
    description: str
    secret: str
    created_at: datetime
    cursor: int  # the last seq of the owner's log turned into deliveries (or skipped by type)
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def wants(self, kind: EventType) -> bool:
        return kind in self.events


@attrs.frozen
class DeliveryAttempt:
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


@attrs.frozen
class WebhookDelivery:
    id: UUID
    webhook_id: UUID
    seq: int
    event_type: str
    body: str  # the JSON sent, the same bytes on every attempt
    state: DeliveryState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    first_attempt_at: datetime | None = None
    history: tuple[DeliveryAttempt, ...] = ()
