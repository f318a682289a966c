"""The Litestar application: routes translate HTTP to use cases and back, nothing more."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from chat4all.entrypoints.bootstrap import Hub
from chat4all.entrypoints.http.allowed_hosts import HostGuard, allowed_hosts
from chat4all.entrypoints.http.auth_routes import AuthController, UserController
from chat4all.entrypoints.http.conversation_routes import ConversationController
from chat4all.entrypoints.http.dependencies import provide_hub
from chat4all.entrypoints.http.docs_page import LocalSwaggerUI
from chat4all.entrypoints.http.errors import EXCEPTION_HANDLERS
from chat4all.entrypoints.http.file_routes import FileController
from chat4all.entrypoints.http.health_routes import health, ready
from chat4all.entrypoints.http.message_routes import MessageController
from chat4all.entrypoints.http.metrics_routes import metrics
from chat4all.entrypoints.http.request import GuardedRequest
from chat4all.entrypoints.http.security_headers import secure_response

MAX_JSON_BODY = 256 * 1024


def create_app(hub: Hub, *, manage_lifecycle: bool = True, bind_host: str | None = None) -> Litestar:
    """`bind_host`: the address `serve` listens on, a Host name requests may use by default."""
    openapi = OpenAPIConfig(
        title="Chat4All",
        version="0.1.0",
        description="Send text and file messages into conversations; delivery to channels is asynchronous and tracked.",
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", description="POST /auth/token")}
        ),
        path="/docs",
        render_plugins=[LocalSwaggerUI()],
    )
    cors = CORSConfig(allow_origins=list(hub.settings.cors_origins)) if hub.settings.cors_origins else None
    app = Litestar(
        route_handlers=[
            health,
            ready,
            *([metrics] if hub.settings.http.metrics_token else []),  # else only on the metrics listener, if any
            AuthController,
            UserController,
            ConversationController,
            MessageController,
            FileController,
        ],
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        state=State({"hub": hub}),
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi,
        cors_config=cors,
        request_max_body_size=MAX_JSON_BODY,
        request_class=GuardedRequest,
        before_send=[secure_response],
        on_startup=[hub.start] if manage_lifecycle else [],
        on_shutdown=[hub.stop] if manage_lifecycle else [],
    )
    # Around the router rather than as route middleware, so unrouted 404/405 answers are guarded too.
    app.asgi_handler = HostGuard(app.asgi_handler, allowed_hosts(hub.settings, bind_host))
    return app
