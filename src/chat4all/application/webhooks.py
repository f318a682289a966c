"""Managing outbound webhooks: creating, listing, deleting, rotating the secret, enabling again,
and the deliveries' history and manual retries. A webhook belongs to the user who made it: to
anybody else it does not exist (404, never 403, so ids tell nothing).

The rules (which URLs, which events, the retry schedule) are `domain.webhooks`; the deliveries
are made and sent in the background (`application.webhook_feed` and `application.webhook_sender`), never in a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import attrs

from chat4all.application.ports import Clock, IdGenerator
from chat4all.application.ports.webhooks import AddressResolver, WebhookSigner, WebhookStore
from chat4all.domain.errors import NotFound, QuotaExceeded
from chat4all.domain.webhooks import (
    MAX_WEBHOOKS_PER_USER,
    Webhook,
    WebhookDelivery,
    check_addresses,
    check_description,
    check_url,
    event_types,
)


@attrs.frozen
class WebhookPolicy:
    """`allow_private`: loopback and private addresses, and plain HTTP, are allowed (tests and
    single-machine setups; CHAT4ALL_WEBHOOK_ALLOW_PRIVATE)."""

    allow_private: bool = False


async def check_destination(url: str, policy: WebhookPolicy, resolver: AddressResolver) -> None:
    """Refuses a URL that is not HTTPS or resolves to a non-public address, unless allowed."""
    host, port = check_url(url, allow_insecure=policy.allow_private)
    if not policy.allow_private:
        check_addresses(host, await resolver.resolve(host, port))


@attrs.define
class ManageWebhooks:
    store: WebhookStore
    signer: WebhookSigner
    resolver: AddressResolver
    clock: Clock
    ids: IdGenerator
    policy: WebhookPolicy = WebhookPolicy()

    async def create(self, caller: UUID, url: str, events: Sequence[str], description: str) -> Webhook:
        """The new webhook, with its secret (shown this once). It receives the events that come
        after it is made."""
        kinds = event_types(events)
        check_description(description)
        await check_destination(url, self.policy, self.resolver)
        if await self.store.count_owned(caller) >= MAX_WEBHOOKS_PER_USER:
            raise QuotaExceeded(f"a user may have {MAX_WEBHOOKS_PER_USER} webhooks; delete one first", quota="webhooks")
        webhook = Webhook(
            id=self.ids.new_id(),
            owner_id=caller,
            url=url,
            events=kinds,
            description=description,
            secret=self.signer.new_secret(),
            created_at=self.clock.now(),
            cursor=await self.store.last_seq(caller),
        )
        await self.store.add(webhook)
        return webhook

    async def list(self, caller: UUID) -> list[Webhook]:
        return await self.store.owned(caller)

    async def get(self, caller: UUID, webhook_id: UUID) -> Webhook:
        webhook = await self.store.get(caller, webhook_id)
        if webhook is None:
            raise NotFound("no such webhook", code="webhook_not_found")
        return webhook

    async def delete(self, caller: UUID, webhook_id: UUID) -> None:
        if not await self.store.remove(caller, webhook_id):
            raise NotFound("no such webhook", code="webhook_not_found")

    async def rotate_secret(self, caller: UUID, webhook_id: UUID) -> Webhook:
        """A new secret signs every attempt from now on, retries of older deliveries included."""
        if not await self.store.set_secret(caller, webhook_id, self.signer.new_secret()):
            raise NotFound("no such webhook", code="webhook_not_found")
        return await self.get(caller, webhook_id)

    async def disable(self, caller: UUID, webhook_id: UUID) -> Webhook:
        """Pauses deliveries; events keep coming into the log, and are delivered once enabled."""
        if not await self.store.disable(caller, webhook_id, self.clock.now(), "disabled by its owner"):
            raise NotFound("no such webhook", code="webhook_not_found")
        return await self.get(caller, webhook_id)

    async def enable(self, caller: UUID, webhook_id: UUID) -> Webhook:
        """A disabled webhook takes deliveries again, from the events it stopped at."""
        if not await self.store.enable(caller, webhook_id, self.clock.now()):
            raise NotFound("no such webhook", code="webhook_not_found")
        return await self.get(caller, webhook_id)

    async def deliveries(
        self, caller: UUID, webhook_id: UUID, limit: int, offset: int
    ) -> tuple[list[WebhookDelivery], int]:
        await self.get(caller, webhook_id)
        return await self.store.deliveries(webhook_id, limit, offset)

    async def retry(self, caller: UUID, webhook_id: UUID, delivery_id: UUID) -> WebhookDelivery:
        """Sends the delivery again soon (in the background), on a fresh schedule."""
        await self.get(caller, webhook_id)
        delivery = await self.store.retry(webhook_id, delivery_id, self.clock.now())
        if delivery is None:
            raise NotFound("no such delivery", code="delivery_not_found")
        return delivery
