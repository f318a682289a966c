from __future__ import annotations

from litestar import Response, get

from chat4all.entrypoints.http.dependencies import HubDep


@get("/health", tags=["health"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", tags=["health"], summary="Readiness: database, storage (and broker) reachable")
async def ready(hub: HubDep) -> Response[dict]:
    checks = await hub.readiness()
    healthy = all(result == "ok" for result in checks.values())
    body = {"status": "ready" if healthy else "unavailable", "checks": checks}
    return Response(body, status_code=200 if healthy else 503, headers=None if healthy else {"Retry-After": "5"})
