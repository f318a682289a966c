from __future__ import annotations

from litestar import Response, get

from chat4all.entrypoints.http.dependencies import HubDep

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@get("/metrics", tags=["health"], summary="Pipeline counters, outbox backlog and delivery latency (Prometheus text format)")
async def metrics(hub: HubDep) -> Response[bytes]:
    try:
        backlog = await hub.adapters.outbox_reader.backlog()
    except Exception:  # the database being away must not hide the other metrics
        backlog = None
    return Response(hub.adapters.metrics.render(outbox_backlog=backlog), media_type=PROMETHEUS_TEXT)
