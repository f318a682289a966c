from __future__ import annotations

from litestar import Response, get

from chat4all.entrypoints.http.dependencies import HubDep

# Litestar appends "; charset=utf-8" to text/* media types itself (naming it here sent it twice).
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


@get(
    "/metrics",
    tags=["health"],
    media_type=PROMETHEUS_TEXT,  # documented as such, not as JSON
    summary="Pipeline counters, outbox backlog and delivery latency (Prometheus text format)",
)
async def metrics(hub: HubDep) -> Response[bytes]:
    try:
        backlog = await hub.adapters.outbox_reader.backlog()
    except Exception:  # the database being away must not hide the other metrics
        backlog = None
    return Response(hub.adapters.metrics.render(outbox_backlog=backlog), media_type=PROMETHEUS_TEXT)
