"""One table from errors to HTTP answers; every error body is {detail, error_code, field_errors?}."""

from __future__ import annotations

import logging
import re

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from chat4all.domain import errors as domain
from chat4all.domain.events import CursorExpired
from chat4all.entrypoints.http.schemas import ErrorBody

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[domain.DomainError], int] = {
    domain.InvalidInput: 400,
    domain.NotAuthenticated: 401,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Gone: 410,
    domain.TooLarge: 413,
    domain.RangeNotSatisfiable: 416,
    domain.Throttled: 429,
    domain.QuotaExceeded: 429,
    domain.Unavailable: 503,
}

CODE_BY_STATUS = {
    400: "invalid_input",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "service_unavailable",
}

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="chat4all"'}


def error_response(
    status: int, detail: str, code: str, field_errors=None, headers=None, resume_from: int | None = None
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(detail=detail, error_code=code, field_errors=field_errors or None, resume_from=resume_from),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def on_domain_error(_: Request, error: domain.DomainError) -> Response[ErrorBody]:
    status = next((code for kind, code in STATUS_BY_ERROR.items() if isinstance(error, kind)), 400)
    headers = {}
    if status == 401:
        headers.update(BEARER_CHALLENGE)
    if isinstance(error, domain.Throttled | domain.Unavailable | domain.QuotaExceeded):
        if error.retry_after_seconds is not None:
            headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, domain.RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    resume_from = error.resume_from if isinstance(error, CursorExpired) else None
    return error_response(status, error.detail, error.code, error.field_errors, headers, resume_from)


_JSON_PATH = re.compile(r"at `\$\.?([^`]*)`")


def on_validation_error(_: Request, error: ValidationException) -> Response[ErrorBody]:
    field_errors: dict[str, list[str]] = {}
    for item in error.extra or []:
        if isinstance(item, dict):
            message = str(item.get("message", "invalid"))
            key = str(item.get("key") or _field_from(message) or "body")
            field_errors.setdefault(key, []).append(message)
    detail = error.detail or "the request is not valid"
    if field_errors:
        detail = "; ".join(f"{key}: {', '.join(messages)}" for key, messages in field_errors.items())
    return error_response(400, detail, "invalid_input", field_errors)


def _field_from(message: str) -> str | None:
    match = _JSON_PATH.search(message)
    return match.group(1) or "body" if match else None


def on_http_error(_: Request, error: HTTPException) -> Response[ErrorBody]:
    status = error.status_code
    headers = dict(error.headers or {})
    if isinstance(error, NotAuthorizedException):
        headers.update(BEARER_CHALLENGE)
    detail = error.detail if status < 500 else "the server could not handle this request"
    return error_response(status, detail, CODE_BY_STATUS.get(status, "http_error"), headers=headers)


def on_unexpected_error(request: Request, error: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error; it has been logged", "internal_error")


EXCEPTION_HANDLERS = {
    domain.DomainError: on_domain_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    Exception: on_unexpected_error,
}
