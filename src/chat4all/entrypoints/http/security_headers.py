"""A `before_send` hook, so it sees every response the app sends: those of the routes, and also
the router's 404/405 and the CORS layer's preflight answers, which app middleware never sees."""

from __future__ import annotations

import json
from http import HTTPStatus

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from chat4all.entrypoints.http.docs_page import DOCS_POLICY

HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    # Nothing the API answers is a page: should a browser render one anyway, it may load and run nothing.
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}

_REPLACED_BODY = "chat4all.replaced_error_body"


async def secure_response(message: Message, scope: Scope) -> None:
    """Adds the security headers to every HTTP response, and turns any error answer that is not
    already a JSON error body (Litestar's CORS rejection is plain text) into one."""
    if scope["type"] != "http":
        return
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        status = message["status"]
        html = (headers.get("content-type") or "").startswith("text/html")
        if status < 400 and html and "content-security-policy" not in headers:
            headers["content-security-policy"] = DOCS_POLICY  # the docs page; the chat page sets its own
        for name, value in HEADERS.items():
            if name not in headers:
                headers[name] = value
        if status >= 400 and not (headers.get("content-type") or "").startswith("application/json"):
            body = _error_body(status, scope)
            scope[_REPLACED_BODY] = body  # type: ignore[literal-required]
            headers["content-type"] = "application/json"
            headers["content-length"] = str(len(body))
    elif message["type"] == "http.response.body" and _REPLACED_BODY in scope:
        message["body"] = scope.pop(_REPLACED_BODY)  # type: ignore[misc]
        message["more_body"] = False


def _error_body(status: int, scope: Scope) -> bytes:
    if scope.get("method") == "OPTIONS" and status == 400:
        detail, code = "CORS preflight refused: origin, method or header not allowed", "cors_rejected"
    else:
        detail, code = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error", "http_error"
    return json.dumps({"detail": detail, "error_code": code}).encode()
