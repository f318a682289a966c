"""Outbound webhooks over HTTP: each route translates and calls `ManageWebhooks`."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from chat4all.application.webhooks import ManageWebhooks
from chat4all.entrypoints.http import webhook_schemas as schemas
from chat4all.entrypoints.http.dependencies import PageDep, UserDep, provide_user
from chat4all.entrypoints.http.openapi_docs import BEARER, errors

Manage = NamedDependency[ManageWebhooks]


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    security = BEARER
    dependencies = {"user": Provide(provide_user)}

    @post(
        "/",
        summary="Register a webhook: the caller's events of the chosen types are POSTed to `url`, signed",
        description="Answers with the signing secret, shown only here (rotate it to get a new one). "
        "HTTPS only, and never to loopback, private, link-local or metadata addresses (unless the server "
        "allows them with CHAT4ALL_WEBHOOK_ALLOW_PRIVATE).",
        status_code=201,
        responses=errors(400, 401, 429),
    )
    async def create(
        self, data: JSONBody[schemas.WebhookCreate], user: UserDep, manage_webhooks: Manage
    ) -> schemas.WebhookWithSecret:
        webhook = await manage_webhooks.create(user.id, data.url, data.events, data.description)
        return schemas.with_secret(webhook)

    @get("/", summary="The caller's webhooks", responses=errors(401))
    async def list_mine(self, user: UserDep, manage_webhooks: Manage) -> schemas.WebhookList:
        return schemas.WebhookList([schemas.webhook_out(each) for each in await manage_webhooks.list(user.id)])

    @get("/{webhook_id:uuid}", summary="One of the caller's webhooks", responses=errors(401, 404))
    async def show(self, webhook_id: FromPath[UUID], user: UserDep, manage_webhooks: Manage) -> schemas.WebhookOut:
        return schemas.webhook_out(await manage_webhooks.get(user.id, webhook_id))

    @delete("/{webhook_id:uuid}", summary="Delete a webhook and its deliveries", responses=errors(401, 404))
    async def remove(self, webhook_id: FromPath[UUID], user: UserDep, manage_webhooks: Manage) -> None:
        await manage_webhooks.delete(user.id, webhook_id)

    @post(
        "/{webhook_id:uuid}/rotate-secret",
        summary="A new signing secret (shown only here); the old one signs nothing from now on",
        status_code=200,
        responses=errors(401, 404),
    )
    async def rotate_secret(
        self, webhook_id: FromPath[UUID], user: UserDep, manage_webhooks: Manage
    ) -> schemas.WebhookWithSecret:
        return schemas.with_secret(await manage_webhooks.rotate_secret(user.id, webhook_id))

    @post(
        "/{webhook_id:uuid}/disable",
        summary="Pause a webhook: nothing is sent until it is enabled again (events are kept for it meanwhile)",
        status_code=200,
        responses=errors(401, 404),
    )
    async def disable(self, webhook_id: FromPath[UUID], user: UserDep, manage_webhooks: Manage) -> schemas.WebhookOut:
        return schemas.webhook_out(await manage_webhooks.disable(user.id, webhook_id))

    @post(
        "/{webhook_id:uuid}/enable",
        summary="Enable a disabled webhook: its pending deliveries, and the events since, are sent",
        status_code=200,
        responses=errors(401, 404),
    )
    async def enable(self, webhook_id: FromPath[UUID], user: UserDep, manage_webhooks: Manage) -> schemas.WebhookOut:
        return schemas.webhook_out(await manage_webhooks.enable(user.id, webhook_id))

    @get(
        "/{webhook_id:uuid}/deliveries",
        summary="The webhook's deliveries, newest event first, each with every attempt",
        responses=errors(401, 404),
    )
    async def deliveries(
        self, webhook_id: FromPath[UUID], user: UserDep, page: PageDep, manage_webhooks: Manage
    ) -> schemas.DeliveryPage:
        found, total = await manage_webhooks.deliveries(user.id, webhook_id, page.limit, page.offset)
        return schemas.DeliveryPage([schemas.delivery_out(each) for each in found], total, page.limit, page.offset)

    @post(
        "/{webhook_id:uuid}/deliveries/{delivery_id:uuid}/retry",
        summary="Send a delivery again (in the background, with the same webhook-id), on a fresh schedule",
        status_code=202,
        responses=errors(401, 404),
    )
    async def retry(
        self, webhook_id: FromPath[UUID], delivery_id: FromPath[UUID], user: UserDep, manage_webhooks: Manage
    ) -> Response[schemas.DeliveryOut]:
        delivery = await manage_webhooks.retry(user.id, webhook_id, delivery_id)
        return Response(schemas.delivery_out(delivery), status_code=202)
