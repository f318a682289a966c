"""What the hostile input tests share: how a refusal must look, and what must never appear in one."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.http.test_auth_http import assert_error

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
CHECKOUT = str(Path(__file__).resolve().parents[3])  # where the server's code lives
INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|sqlalchemy|psycopg|sqlite|asyncpg|SELECT |INSERT |UPDATE |/tmp/|"
    + re.escape(CHECKOUT)
)
JSON = {"Content-Type": "application/json"}
BINARY = {"Content-Type": "application/octet-stream"}
MAX_JSON_BODY = 256 * 1024


def refused(response, status: int, code: str | None = None) -> dict:
    """A uniform refusal: the status, {detail, error_code}, the security headers, and nothing internal."""
    body = assert_error(response, status, code)
    assert not INTERNALS.search(response.text), response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    return body
