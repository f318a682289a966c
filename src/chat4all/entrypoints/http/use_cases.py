"""What the HTTP edge calls: the use cases, each handed to the routes that need it by name,
through Litestar's dependency injection (a route asks for `send_message`, not for a hub)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
from litestar.di import Provide

from chat4all.application.auth import Authenticate, FindUsers, Logout, ResolveToken
from chat4all.application.channel_handles import ChannelHandles
from chat4all.application.conversations import CreateConversation, LeaveConversation, ViewConversations
from chat4all.application.events import ReadEvents
from chat4all.application.history import ReadHistory
from chat4all.application.inbound import ReceiveReply
from chat4all.application.live import LiveEvents
from chat4all.application.messaging import ReadMessages, SendMessage
from chat4all.application.monitoring import ReportMetrics
from chat4all.application.reading import MarkConversationRead
from chat4all.application.typing_notices import SendTyping
from chat4all.application.uploads import CompleteUpload, InitiateUpload, UploadChunk, ViewUpload

# Each dependency the process needs (database, storage, broker) -> "ok" or why it is not reachable.
ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


@attrs.frozen
class UseCases:
    authenticate: Authenticate
    logout: Logout
    resolve_token: ResolveToken
    find_users: FindUsers
    create_conversation: CreateConversation
    view_conversations: ViewConversations
    leave_conversation: LeaveConversation
    send_message: SendMessage
    read_messages: ReadMessages
    initiate_upload: InitiateUpload
    upload_chunk: UploadChunk
    complete_upload: CompleteUpload
    view_upload: ViewUpload
    report_metrics: ReportMetrics
    readiness: ReadinessCheck
    read_history: ReadHistory
    mark_conversation_read: MarkConversationRead
    read_events: ReadEvents
    live_events: LiveEvents
    send_typing: SendTyping
    channel_handles: ChannelHandles
    receive_reply: ReceiveReply
    manage_webhooks: Any = None  # ManageWebhooks; None: no webhook routes

    def providers(self) -> dict[str, Provide]:
        """One Litestar dependency per use case, named as the field."""
        return {field.name: provide_value(getattr(self, field.name)) for field in attrs.fields(UseCases)}


class Lifecycle(Protocol):
    """What the app starts with its own lifespan, when it is given one (`chat4all serve`)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def provide_value(value: Any) -> Provide:
    def provide() -> Any:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)
