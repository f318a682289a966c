"""GET /metrics, which is not for the API's users: message counts, backlogs and latencies tell an
outsider how busy the hub is. It is served on the API port only with CHAT4ALL_METRICS_TOKEN (as a
bearer token), and on a listener of its own with CHAT4ALL_METRICS_PORT; by default, nowhere."""

from __future__ import annotations

import hmac

from litestar import Litestar, Response, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler

from chat4all.domain.errors import NotAuthenticated
from chat4all.entrypoints.bootstrap import Hub
from chat4all.entrypoints.http.dependencies import HubDep, provide_hub
from chat4all.entrypoints.http.errors import EXCEPTION_HANDLERS
from chat4all.entrypoints.http.openapi_docs import errors
from chat4all.entrypoints.http.request import GuardedRequest
from chat4all.entrypoints.http.security_headers import secure_response

# Litestar appends "; charset=utf-8" to text/* media types itself (naming it here sent it twice).
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


def metrics_token_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    token = connection.app.state.hub.settings.http.metrics_token
    if token is None:
        return  # only on the metrics listener: it is reachable where the operator bound it
    scheme, _, secret = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(secret.strip().encode(), token.encode()):
        raise NotAuthenticated("send 'Authorization: Bearer <CHAT4ALL_METRICS_TOKEN>'", code="invalid_metrics_token")


@get(
    "/metrics",
    tags=["health"],
    media_type=PROMETHEUS_TEXT,  # documented as such, not as JSON
    summary="Pipeline counters, outbox backlog and delivery latency (Prometheus text format)",
    guards=[metrics_token_guard],
    responses=errors(401),
)
async def metrics(hub: HubDep) -> Response[bytes]:
    try:
        backlog = await hub.adapters.outbox_reader.backlog()
    except Exception:  # the database being away must not hide the other metrics
        backlog = None
    return Response(hub.adapters.metrics.render(outbox_backlog=backlog), media_type=PROMETHEUS_TEXT)


def create_metrics_app(hub: Hub) -> Litestar:
    """What the metrics listener serves: /metrics and nothing else (no docs, no API)."""
    return Litestar(
        route_handlers=[metrics],
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        state=State({"hub": hub}),
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=None,
        request_class=GuardedRequest,
        before_send=[secure_response],
    )
