"""The HTTP edge as this process runs it: the app's configuration and use cases, from the settings
and the hub, and the uvicorn server `chat4all serve` starts. The app itself (entrypoints.http) is
given plain values and use cases; it reads no settings and touches no adapter."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlparse

from litestar import Litestar

from chat4all.application.monitoring import ReportMetrics
from chat4all.entrypoints.bootstrap import Hub
from chat4all.entrypoints.http.app import create_app
from chat4all.entrypoints.http.config import HttpConfig
from chat4all.entrypoints.http.metrics_routes import create_metrics_app
from chat4all.entrypoints.http.server import GuardedHttpToolsProtocol
from chat4all.entrypoints.http.use_cases import UseCases
from chat4all.entrypoints.http.ws_protocol import MAX_CLIENT_FRAME, LiveWebSocketProtocol
from chat4all.entrypoints.settings import LOOPBACK_HOSTS, Settings

WILDCARD_BINDS = {"", "0.0.0.0", "::"}


def web_app(hub: Hub, settings: Settings, *, bind_host: str | None = None, manage_lifecycle: bool = True) -> Litestar:
    """The API. `bind_host`: the address `serve` listens on, a Host name requests may use by default.
    `manage_lifecycle`: the app's lifespan starts and stops the hub (else its caller does)."""
    return create_app(http_use_cases(hub), http_config(settings, bind_host), lifecycle=hub if manage_lifecycle else None)


def metrics_app(hub: Hub, settings: Settings) -> Litestar:
    """What the metrics listener (CHAT4ALL_METRICS_PORT) serves."""
    return create_metrics_app(http_use_cases(hub).report_metrics, settings.http.metrics_token)


def http_config(settings: Settings, bind_host: str | None = None) -> HttpConfig:
    return HttpConfig(
        public_url=settings.public_url,
        allowed_hosts=allowed_hosts(settings, bind_host),
        cors_origins=settings.cors_origins,
        metrics_token=settings.http.metrics_token,
        events_keepalive=settings.events.keepalive,
        events_send_timeout=settings.events.slow_client,
    )


def http_use_cases(hub: Hub) -> UseCases:
    recipient = hub.recipient
    if recipient is None:
        raise RuntimeError("the API needs a hub wired with its event logs (Adapters.events)")
    return UseCases(
        authenticate=hub.authenticate,
        logout=hub.logout,
        resolve_token=hub.resolve_token,
        find_users=hub.find_users,
        create_conversation=hub.create_conversation,
        view_conversations=hub.view_conversations,
        leave_conversation=hub.leave_conversation,
        send_message=hub.send_message,
        read_messages=hub.read_messages,
        initiate_upload=hub.initiate_upload,
        upload_chunk=hub.upload_chunk,
        complete_upload=hub.complete_upload,
        view_upload=hub.view_upload,
        report_metrics=ReportMetrics(hub.adapters.outbox_reader, hub.adapters.metrics),
        readiness=hub.readiness,
        read_history=recipient.read_history,
        mark_conversation_read=recipient.mark_conversation_read,
        read_events=recipient.read_events,
        live_events=recipient.live_events,
        send_typing=recipient.send_typing,
        channel_handles=hub.channel_handles,
        receive_reply=hub.receive_reply,
        manage_webhooks=hub.webhooks,
    )


def allowed_hosts(settings: Settings, bind_host: str | None) -> frozenset[str] | None:
    """The names a request's Host may carry (None: any). CHAT4ALL_ALLOWED_HOSTS when set; else the
    loopback names, the address the server is bound to, and the public URL's host."""
    configured = settings.http.allowed_hosts
    if configured is not None:
        return None if "*" in configured else frozenset(configured)
    names = set(LOOPBACK_HOSTS)
    if bind_host is not None and bind_host.strip("[]") not in WILDCARD_BINDS:
        names.add(bind_host.strip("[]").lower())
    if settings.public_url:
        names.add((urlparse(settings.public_url).hostname or "").lower())
    return frozenset(names)


def server_config(app: Any, settings: Settings, host: str, port: int) -> Any:
    """The uvicorn configuration `chat4all serve` runs: the guarded protocol with the settings' limits."""
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, loop="uvloop", access_log=False, log_level="warning", lifespan="on",
        http=partial(GuardedHttpToolsProtocol, limits=settings.http),
        # WebSockets carry live events only: small client frames, no compression (a zlib context
        # per connection would cost more memory than the connection itself), and a ping every
        # keep-alive period, the socket closed when the next does not get its pong in as long.
        ws=LiveWebSocketProtocol,
        ws_max_size=MAX_CLIENT_FRAME,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.events.keepalive,
        ws_ping_timeout=settings.events.keepalive,
        timeout_keep_alive=int(settings.http.keep_alive_timeout),
        server_header=False,  # no need to tell every client which server, and which version, runs here
        # X-Forwarded-For decides the client address that logins are throttled by: honour it only from
        # the proxies the operator named (uvicorn would otherwise trust any local peer).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )


def run_server(config: Any, settings: Settings, before_shutdown: Callable[[], None] | None = None) -> None:
    """One uvicorn server, one event loop, one set of limits, for the API port and the metrics port.
    `before_shutdown`: called when the server is asked to stop, before it waits for its connections
    to close (the live streams, which never end on their own, are ended there)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            if before_shutdown is not None:
                before_shutdown()
            await super().shutdown(sockets)

    sockets = [config.bind_socket()]
    if settings.http.metrics_port:
        metrics = uvicorn.Config(config.app, host=settings.http.metrics_address, port=settings.http.metrics_port)
        sockets.append(metrics.bind_socket())
    Server(config).run(sockets=sockets)
