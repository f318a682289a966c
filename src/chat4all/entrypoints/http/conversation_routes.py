from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, delete, get, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from chat4all.domain.conversations import ConversationMetadata, ConversationType
from chat4all.entrypoints.http import schemas, views
from chat4all.entrypoints.http.dependencies import HubDep, UserDep, provide_user
from chat4all.entrypoints.http.openapi_docs import BEARER, errors

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1-100")]
# Bounded so that no value can overflow a database integer (an unbounded offset once gave a 500).
MAX_OFFSET = 2**31 - 1
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="Items to skip")]


class ConversationController(Controller):
    path = "/v1/conversations"
    tags = ["conversations"]
    security = BEARER
    dependencies = {"user": Provide(provide_user)}

    @post(
        "/",
        summary="Start a conversation (201), or get the existing private one for the same pair (200)",
        responses={
            200: ResponseSpec(schemas.ConversationOut, description="The existing private conversation of this pair"),
            **errors(400, 401, 403, 413, 429),
        },
    )
    async def create(self, data: JSONBody[schemas.ConversationCreate], user: UserDep, hub: HubDep) -> Response[schemas.ConversationOut]:
        metadata = data.metadata or schemas.ConversationMetadataIn()
        result = await hub.create_conversation.execute(
            caller=user.id,
            type=ConversationType(data.type),
            members=list(data.members),
            metadata=ConversationMetadata(metadata.name, metadata.description),
        )
        return Response(views.conversation_out(result.conversation), status_code=201 if result.created else 200)

    @get("/", summary="The caller's conversations, most recent activity first", responses=errors(400, 401))
    async def list_mine(
        self, user: UserDep, hub: HubDep, limit: Limit = 50, offset: Offset = 0
    ) -> schemas.ConversationPage:
        page, total = await hub.view_conversations.list(user.id, limit=limit, offset=offset)
        return schemas.ConversationPage([views.conversation_out(each) for each in page], total, limit, offset)

    @get("/{conversation_id:uuid}", summary="One conversation (members only)", responses=errors(401, 403, 404))
    async def get_one(self, conversation_id: FromPath[UUID], user: UserDep, hub: HubDep) -> schemas.ConversationOut:
        return views.conversation_out(await hub.view_conversations.get(user.id, conversation_id))

    @get(
        "/{conversation_id:uuid}/messages",
        summary="Messages in chronological order (members only)",
        responses=errors(400, 401, 403, 404),
    )
    async def messages(
        self, conversation_id: FromPath[UUID], user: UserDep, hub: HubDep, limit: Limit = 50, offset: Offset = 0
    ) -> schemas.MessagePage:
        page, total = await hub.read_messages.list(user.id, conversation_id, limit=limit, offset=offset)
        return schemas.MessagePage(conversation_id, [views.message_out(each) for each in page], total, limit, offset)

    @delete(
        "/{conversation_id:uuid}/members/me",
        summary="Leave a group (204); a private conversation cannot be left (409)",
        description=(
            "From then on the caller is an outsider: 403 on reading or sending, no deliveries. "
            "The last member may leave too; the group is then kept, with its messages, for nobody."
        ),
        responses=errors(401, 403, 404, 409),
    )
    async def leave(self, conversation_id: FromPath[UUID], user: UserDep, hub: HubDep) -> None:
        await hub.leave_conversation.execute(user.id, conversation_id)
