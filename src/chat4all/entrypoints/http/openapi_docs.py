"""What the OpenAPI document says beyond the success answer: every error a route can give, in the
one error body the app really sends, and the request bodies Litestar cannot infer."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from chat4all.entrypoints.http.schemas import ErrorBody

BEARER = [{"BearerToken": []}]

ERROR_DESCRIPTIONS = {
    400: "Invalid input: `error_code` says what, `field_errors` names the fields at fault",
    401: "Missing, malformed, expired or revoked token, or wrong credentials (`WWW-Authenticate: Bearer`)",
    403: "The resource exists but the caller may not use it",
    404: "No such resource (ids that are not UUIDs included)",
    409: "Conflicts with the resource's current state",
    410: (
        "Gone: the upload has expired, or (`cursor_expired`) events after the cursor are no longer kept: "
        "reload over REST, then resume from `resume_from`"
    ),
    413: "The request body, or the announced file, is too large",
    416: "The part asked for starts past the end of the file (`Content-Range: bytes */<size>`)",
    429: (
        "Too many failed logins (`too_many_attempts`), or a per-user quota is full (`quota_exceeded`, the detail "
        "names it), or too many live connections (`too_many_connections`); `Retry-After`, when the wait alone frees it, "
        "gives the seconds to wait"
    ),
    503: "A dependency is unreachable; retry after `Retry-After` seconds",
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """Error answers for `responses=`, each with ErrorBody. Every route may answer 400 (Litestar would
    otherwise document its own, different, validation body) and 503 (they all read the database)."""
    return {
        status: ResponseSpec(ErrorBody, description=ERROR_DESCRIPTIONS[status], generate_examples=False)
        for status in sorted({400, *statuses, 503})
    }


@dataclass
class ChunkUploadOperation(Operation):
    """PATCH /v1/files/upload reads its body as a stream, so the body is described by hand."""

    def __post_init__(self) -> None:
        binary = Schema(type=OpenAPIType.STRING, format="binary")
        self.request_body = RequestBody(
            required=True,
            description="Exactly the chunk's bytes: `chunk_size`, or the remainder for the last chunk",
            content={
                "application/octet-stream": OpenAPIMediaType(schema=binary),
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.OBJECT, properties={"file": binary}, required=["file"])
                ),
            },
        )
