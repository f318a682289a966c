from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from chat4all.entrypoints.http import schemas
from chat4all.entrypoints.http.use_cases import ReadinessCheck


@get("/health", tags=["health"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    tags=["health"],
    summary="Readiness: database, storage (and broker) reachable",
    responses={
        503: ResponseSpec(schemas.Readiness, description="Not ready; `checks` says what is unreachable", generate_examples=False)
    },
)
async def ready(readiness: NamedDependency[ReadinessCheck]) -> Response[schemas.Readiness]:
    checks = await readiness()
    healthy = all(result == "ok" for result in checks.values())
    body = schemas.Readiness("ready" if healthy else "unavailable", checks)
    return Response(body, status_code=200 if healthy else 503, headers=None if healthy else {"Retry-After": "5"})
