"""The users' handles on the channels, and the replies the channels' providers post back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK

from chat4all.application.channel_handles import ChannelHandles
from chat4all.application.inbound import ReceiveReply
from chat4all.entrypoints.http import schemas
from chat4all.entrypoints.http.dependencies import UserDep, provide_user
from chat4all.entrypoints.http.openapi_docs import BEARER, errors

SIGNATURE_HEADER = "X-Hub-Signature-256"
Signature = Annotated[
    str | None,
    HeaderParameter(
        name=SIGNATURE_HEADER, max_length=128, description="`sha256=` and the hex HMAC-SHA256 of the raw body"
    ),
]


def _text(description: str) -> Schema:
    return Schema(type=OpenAPIType.STRING, min_length=1, description=description)


def _object(**properties: Schema) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, properties=properties, required=sorted(properties))


@dataclass
class InboundReplyOperation(Operation):
    """The body is read as bytes (the signature covers them exactly), so it is described by hand."""

    def __post_init__(self) -> None:
        reply = _object(
            **{
                "from": _text("The sender's handle on the channel"),
                "id": _text("The provider's id of the reply"),
                "text": _object(body=_text("The reply")),
                "context": _object(id=_text("The provider's id of the message it answers")),
            }
        )
        self.request_body = RequestBody(required=True, content={"application/json": OpenAPIMediaType(schema=reply)})


class ChannelHandleController(Controller):
    path = "/v1/users/me/channels"
    tags = ["channels"]
    security = BEARER
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="The handles the channels' providers know the caller by", responses=errors(401))
    async def read(self, user: UserDep, channel_handles: NamedDependency[ChannelHandles]) -> schemas.ChannelHandlesOut:
        return schemas.ChannelHandlesOut(await channel_handles.read(user.id))

    @put(
        "/",
        status_code=HTTP_200_OK,
        summary="Set the caller's handles, all at once (a channel left out has none)",
        description="WhatsApp: a phone number in E.164 form; Instagram: a username. A handle belongs to "
        "one user per channel (409 `handle_taken`).",
        responses=errors(401, 409, 413),
    )
    async def replace(
        self, data: JSONBody[schemas.ChannelHandlesIn], user: UserDep, channel_handles: NamedDependency[ChannelHandles]
    ) -> schemas.ChannelHandlesOut:
        return schemas.ChannelHandlesOut(await channel_handles.replace(user.id, data))


class InboundController(Controller):
    path = "/v1/channels"
    tags = ["channels"]

    @post(
        "/{channel:str}/inbound",
        status_code=HTTP_200_OK,
        summary="A reply from a channel's provider, signed with the channel's secret",
        description=(
            f"`{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body>`, as Meta signs its webhooks. Body: "
            '`{"from": "+5511999990000", "id": "<provider message id>", "text": {"body": "..."}, '
            '"context": {"id": "<provider id of the message it answers>"}}`. 200: the reply is a message in the '
            "conversation (the same one again when the provider retries); 202: kept as unmatched."
        ),
        responses={
            202: ResponseSpec(schemas.InboundReceived, description="Unknown sender or context: kept as unmatched"),
            **errors(401, 403, 404, 409, 413),
        },
        operation_class=InboundReplyOperation,
    )
    async def receive(
        self,
        channel: FromPath[str],
        request: Request,
        receive_reply: NamedDependency[ReceiveReply],
        signature: Signature = None,
    ) -> Response[schemas.InboundReceived]:
        outcome = await receive_reply.execute(channel, await request.body(), signature)
        if outcome.message_id is None:
            return Response(schemas.InboundReceived("unmatched", reason=outcome.unmatched), status_code=202)
        return Response(schemas.InboundReceived("accepted", outcome.message_id, duplicate=outcome.duplicate))
