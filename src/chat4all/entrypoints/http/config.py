"""What the HTTP app is told by the process that serves it, as plain values: the composition root
builds it from the settings, and nothing under entrypoints.http reads the configuration itself."""

from __future__ import annotations

import attrs


@attrs.frozen
class HttpConfig:
    # The base of the links the API hands out (upload_url, download_url); None: the base URL each
    # request came in on, whose Host the app has checked against `allowed_hosts`.
    public_url: str | None
    allowed_hosts: frozenset[str] | None  # the Host names a request may use; None: any
    cors_origins: tuple[str, ...] = ()
    metrics_token: str | None = None  # set: GET /metrics on the API port, for holders of this bearer token
    events_keepalive: float = 15.0  # seconds between SSE comment lines when there is nothing to send
    # A WebSocket frame the client has not taken for this long means the client stopped reading.
    events_send_timeout: float = 10.0
