from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from chat4all.domain.conversations import ConversationMetadata, ConversationType
from chat4all.entrypoints.http import schemas, views
from chat4all.entrypoints.http.dependencies import HubDep, UserDep, provide_user

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1-100")]
Offset = Annotated[int, QueryParameter(ge=0)]


class ConversationController(Controller):
    path = "/v1/conversations"
    tags = ["conversations"]
    dependencies = {"user": Provide(provide_user)}

    @post("/", summary="Start a conversation (201), or get the existing private one for the same pair (200)")
    async def create(self, data: JSONBody[schemas.ConversationCreate], user: UserDep, hub: HubDep) -> Response[schemas.ConversationOut]:
        metadata = data.metadata or schemas.ConversationMetadataIn()
        result = await hub.create_conversation.execute(
            caller=user.id,
            type=ConversationType(data.type),
            members=list(data.members),
            metadata=ConversationMetadata(metadata.name, metadata.description),
        )
        return Response(views.conversation_out(result.conversation), status_code=201 if result.created else 200)

    @get("/", summary="The caller's conversations, most recent activity first")
    async def list_mine(
        self, user: UserDep, hub: HubDep, limit: Limit = 50, offset: Offset = 0
    ) -> schemas.ConversationPage:
        page, total = await hub.view_conversations.list(user.id, limit=limit, offset=offset)
        return schemas.ConversationPage([views.conversation_out(each) for each in page], total, limit, offset)

    @get("/{conversation_id:uuid}", summary="One conversation (members only)")
    async def get_one(self, conversation_id: FromPath[UUID], user: UserDep, hub: HubDep) -> schemas.ConversationOut:
        return views.conversation_out(await hub.view_conversations.get(user.id, conversation_id))

    @get("/{conversation_id:uuid}/messages", summary="Messages in chronological order (members only)")
    async def messages(
        self, conversation_id: FromPath[UUID], user: UserDep, hub: HubDep, limit: Limit = 50, offset: Offset = 0
    ) -> schemas.MessagePage:
        page, total = await hub.read_messages.list(user.id, conversation_id, limit=limit, offset=offset)
        return schemas.MessagePage(conversation_id, [views.message_out(each) for each in page], total, limit, offset)
