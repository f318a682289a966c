from __future__ import annotations

from uuid import UUID

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from chat4all.application.conversations import CreateConversation, LeaveConversation, ViewConversations
from chat4all.application.history import ReadHistory
from chat4all.application.reading import MarkConversationRead
from chat4all.domain.conversations import ConversationMetadata, ConversationType
from chat4all.entrypoints.http import schemas, views
from chat4all.entrypoints.http.dependencies import HistoryPageDep, PageDep, UserDep, provide_history_page, provide_user
from chat4all.entrypoints.http.openapi_docs import BEARER, errors


class ConversationController(Controller):
    path = "/v1/conversations"
    tags = ["conversations"]
    security = BEARER
    dependencies = {"user": Provide(provide_user), "history_page": Provide(provide_history_page, sync_to_thread=False)}

    @post(
        "/",
        summary="Start a conversation (201), or get the existing private one for the same pair (200)",
        responses={
            200: ResponseSpec(schemas.ConversationOut, description="The existing private conversation of this pair"),
            **errors(400, 401, 403, 413, 429),
        },
    )
    async def create(
        self,
        data: JSONBody[schemas.ConversationCreate],
        user: UserDep,
        create_conversation: NamedDependency[CreateConversation],
    ) -> Response[schemas.ConversationOut]:
        metadata = data.metadata or schemas.ConversationMetadataIn()
        result = await create_conversation.execute(
            caller=user.id,
            type=ConversationType(data.type),
            members=list(data.members),
            metadata=ConversationMetadata(metadata.name, metadata.description),
        )
        return Response(views.conversation_out(result.conversation), status_code=201 if result.created else 200)

    @get(
        "/",
        summary="The caller's conversations, most recent activity first",
        description="Each with the caller's `unread_count` and the `last_message`, both kept as messages "
        "arrive and are read (they cost the same however long a conversation is).",
        responses=errors(400, 401),
    )
    async def list_mine(
        self, user: UserDep, page: PageDep, view_conversations: NamedDependency[ViewConversations]
    ) -> schemas.ConversationPage:
        found, total = await view_conversations.overview(user.id, limit=page.limit, offset=page.offset)
        summaries = [views.conversation_summary_out(each) for each in found]
        return schemas.ConversationPage(summaries, total, page.limit, page.offset)

    @get("/{conversation_id:uuid}", summary="One conversation (members only)", responses=errors(401, 403, 404))
    async def get_one(
        self, conversation_id: FromPath[UUID], user: UserDep, view_conversations: NamedDependency[ViewConversations]
    ) -> schemas.ConversationOut:
        return views.conversation_out(await view_conversations.get(user.id, conversation_id))

    @get(
        "/{conversation_id:uuid}/messages",
        summary="Messages in chronological order (members only)",
        description="Pages by `offset`, or by the cursors each page hands out: `before` (older) and `after` "
        "(newer), which cost the same at any depth. `total` is the conversation's message counter.",
        responses=errors(400, 401, 403, 404),
    )
    async def messages(
        self,
        conversation_id: FromPath[UUID],
        user: UserDep,
        history_page: HistoryPageDep,
        read_history: NamedDependency[ReadHistory],
    ) -> schemas.MessagePage:
        found = await read_history.page(user.id, conversation_id, history_page)
        return views.history_page(conversation_id, found, history_page.limit)

    @post(
        "/{conversation_id:uuid}/read",
        status_code=HTTP_200_OK,
        summary="Mark the conversation read up to one of its messages (members only)",
        description="Advance-only: an `up_to` at or before the caller's horizon answers 200 with "
        "`advanced: false` and changes nothing. Every member gets a `conversation.read` event.",
        responses=errors(400, 401, 403, 404),
    )
    async def mark_read(
        self,
        conversation_id: FromPath[UUID],
        data: JSONBody[schemas.ReadRequest],
        user: UserDep,
        mark_conversation_read: NamedDependency[MarkConversationRead],
    ) -> schemas.ReadOut:
        return views.read_out(await mark_conversation_read.execute(user.id, conversation_id, data.up_to))

    @delete(
        "/{conversation_id:uuid}/members/me",
        summary="Leave a group (204); a private conversation cannot be left (409)",
        description=(
            "From then on the caller is an outsider: 403 on reading or sending, no deliveries. "
            "The last member may leave too; the group is then kept, with its messages, for nobody."
        ),
        responses=errors(401, 403, 404, 409),
    )
    async def leave(
        self, conversation_id: FromPath[UUID], user: UserDep, leave_conversation: NamedDependency[LeaveConversation]
    ) -> None:
        await leave_conversation.execute(user.id, conversation_id)
