"""GET /metrics, which is not for the API's users: message counts, backlogs and latencies tell an
outsider how busy the hub is. It is served on the API port only with CHAT4ALL_METRICS_TOKEN (as a
bearer token), and on a listener of its own with CHAT4ALL_METRICS_PORT; by default, nowhere."""

from __future__ import annotations

import hmac

from litestar import Litestar, Response, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler

from chat4all.application.monitoring import ReportMetrics
from chat4all.domain.errors import NotAuthenticated
from chat4all.entrypoints.http.errors import EXCEPTION_HANDLERS
from chat4all.entrypoints.http.openapi_docs import errors
from chat4all.entrypoints.http.request import GuardedRequest
from chat4all.entrypoints.http.security_headers import secure_response
from chat4all.entrypoints.http.use_cases import provide_value

# Litestar appends "; charset=utf-8" to text/* media types itself (naming it here sent it twice).
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


def metrics_route(token: str | None) -> HTTPRouteHandler:
    """The route, wanting `Authorization: Bearer <token>`; with no token, it is only mounted on the
    metrics listener, reachable where the operator bound it."""

    def token_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if token is None:
            return
        scheme, _, secret = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(secret.strip().encode(), token.encode()):
            raise NotAuthenticated("send 'Authorization: Bearer <CHAT4ALL_METRICS_TOKEN>'", code="invalid_metrics_token")

    @get(
        "/metrics",
        tags=["health"],
        media_type=PROMETHEUS_TEXT,  # documented as such, not as JSON
        summary="Pipeline counters, outbox backlog and delivery latency (Prometheus text format)",
        guards=[token_guard],
        responses=errors(401),
    )
    async def metrics(report_metrics: NamedDependency[ReportMetrics]) -> Response[bytes]:
        return Response(await report_metrics.execute(), media_type=PROMETHEUS_TEXT)

    return metrics


def create_metrics_app(report_metrics: ReportMetrics, token: str | None) -> Litestar:
    """What the metrics listener serves: /metrics and nothing else (no docs, no API)."""
    return Litestar(
        route_handlers=[metrics_route(token)],
        dependencies={"report_metrics": provide_value(report_metrics)},
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=None,
        request_class=GuardedRequest,
        before_send=[secure_response],
    )
