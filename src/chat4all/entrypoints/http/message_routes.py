from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from chat4all.application.messaging import ReadMessages, SendMessage, SendRequest
from chat4all.domain.messages import Priority
from chat4all.entrypoints.http import schemas, views
from chat4all.entrypoints.http.dependencies import UserDep, provide_user
from chat4all.entrypoints.http.openapi_docs import BEARER, errors


class MessageController(Controller):
    path = "/v1/messages"
    tags = ["messages"]
    security = BEARER
    dependencies = {"user": Provide(provide_user)}

    @post(
        "/",
        status_code=HTTP_200_OK,
        summary="Accept a message for delivery",
        description="Answers once the message is durably stored; routing and delivery follow asynchronously. "
        "Re-sending with the same message_id and content is safe and returns the same answer.",
        responses=errors(400, 401, 403, 404, 409, 413),
    )
    async def send(
        self, data: JSONBody[schemas.MessageCreate], user: UserDep, send_message: NamedDependency[SendMessage]
    ) -> schemas.MessageAccepted:
        payload = data.payload
        request = SendRequest(
            message_id=data.message_id,
            conversation_id=data.conversation_id,
            sender_id=data.from_,
            recipient_id=data.to,
            channels=tuple(data.channels),
            text=payload.text if isinstance(payload, schemas.TextPayloadIn) else None,
            file_id=payload.file_id if isinstance(payload, schemas.FilePayloadIn) else None,
            priority=Priority(data.priority),
            failover=tuple(data.failover),
        )
        message = await send_message.execute(user.id, request)
        return schemas.MessageAccepted(message_id=message.id)

    @get(
        "/{message_id:uuid}",
        summary="A message with its full status history and a receipt per recipient (members only)",
        description="`status` becomes `read` once every recipient has read it (after its channels delivered it).",
        responses=errors(401, 403, 404),
    )
    async def get_one(
        self, message_id: FromPath[UUID], user: UserDep, read_messages: NamedDependency[ReadMessages]
    ) -> schemas.MessageDetail:
        return views.message_detail(*await read_messages.detail(user.id, message_id))
