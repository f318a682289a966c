"""The Litestar application: routes translate HTTP to use cases and back, nothing more."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from chat4all.entrypoints.http.allowed_hosts import HostGuard
from chat4all.entrypoints.http.auth_routes import AuthController, UserController
from chat4all.entrypoints.http.channel_routes import ChannelHandleController, InboundController
from chat4all.entrypoints.http.chat_page import chat_routes
from chat4all.entrypoints.http.config import HttpConfig
from chat4all.entrypoints.http.conversation_routes import ConversationController
from chat4all.entrypoints.http.dependencies import links_provider, provide_page
from chat4all.entrypoints.http.dependency_order import DependenciesInTurn
from chat4all.entrypoints.http.docs_page import LocalSwaggerUI
from chat4all.entrypoints.http.errors import EXCEPTION_HANDLERS
from chat4all.entrypoints.http.event_routes import EventController
from chat4all.entrypoints.http.file_routes import FileController
from chat4all.entrypoints.http.health_routes import health, ready
from chat4all.entrypoints.http.message_routes import MessageController
from chat4all.entrypoints.http.metrics_routes import metrics_route
from chat4all.entrypoints.http.request import GuardedRequest
from chat4all.entrypoints.http.security_headers import secure_response
from chat4all.entrypoints.http.use_cases import Lifecycle, UseCases, provide_value
from chat4all.entrypoints.http.webhook_routes import WebhookController
from chat4all.entrypoints.http.websocket_route import events_socket

MAX_JSON_BODY = 256 * 1024


def create_app(use_cases: UseCases, config: HttpConfig, *, lifecycle: Lifecycle | None = None) -> Litestar:
    """`lifecycle`: what the app's lifespan starts and stops (None: the caller runs it)."""
    app = Litestar(
        route_handlers=[
            health,
            ready,
            # Else /metrics is only on the metrics listener, if there is one.
            *([metrics_route(config.metrics_token)] if config.metrics_token else []),
            AuthController,
            UserController,
            ConversationController,
            MessageController,
            FileController,
            EventController,
            ChannelHandleController,
            InboundController,
            *[events_socket, *chat_routes(), *webhook_routes(use_cases)],
        ],
        dependencies={
            **use_cases.providers(),
            "http_config": provide_value(config),
            "page": Provide(provide_page, sync_to_thread=False),
            "links": Provide(links_provider(config.public_url), sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi(),
        cors_config=CORSConfig(allow_origins=list(config.cors_origins)) if config.cors_origins else None,
        request_max_body_size=MAX_JSON_BODY,
        request_class=GuardedRequest,
        before_send=[secure_response],
        plugins=[DependenciesInTurn()],
        on_startup=[lifecycle.start] if lifecycle else [],
        on_shutdown=[lifecycle.stop] if lifecycle else [],
        # The process's logging is set up once, by `chat4all` (CHAT4ALL_LOG_LEVEL); Litestar's own
        # configuration would replace the root logger's level (INFO) and handlers when the app starts.
        logging_config=None,
    )
    # Around the router rather than as route middleware, so unrouted 404/405 answers are guarded too.
    app.asgi_handler = HostGuard(app.asgi_handler, config.allowed_hosts)
    return app


def webhook_routes(use_cases: UseCases) -> list[type[WebhookController]]:
    """The webhook routes, where the process manages webhooks."""
    return [WebhookController] if use_cases.manage_webhooks is not None else []


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Chat4All",
        version="0.1.0",
        description=(
            "Send text and file messages into conversations; delivery to channels is asynchronous and tracked. "
            "Each user's events (message.created, message.status, conversation.created, conversation.read) come "
            "with a per-user `seq` over three transports: `GET /v1/events` (long-poll), `GET /v1/events/stream` "
            "(Server-Sent Events) and a WebSocket at `/v1/events/ws`, which OpenAPI cannot describe: "
            'authenticate with the Authorization header or a first frame {"type": "auth", "token": "..."} within '
            '5 s, then send {"type": "resume", "since": N}; the server sends {seq, type, at, data} frames and '
            'typing notices, and takes {"type": "typing", "conversation_id": "..."} and {"type": "ping"}. '
            "Close codes: 4401 token missing, expired or revoked; 4429 too many connections for the user; "
            "1013 server busy; 4408 too slow (reconnect and resume)."
        ),
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", description="POST /auth/token")}
        ),
        path="/docs",
        render_plugins=[LocalSwaggerUI()],
    )
