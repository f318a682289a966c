"""The hub's REST API over HTTP (httpx), with its answers turned into data or one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from chat4all.client.errors import LOGIN_AGAIN, ServerError, SessionExpired, Unreachable

# Per network operation (connecting, each read, each write), not per request: a 2 GiB download
# may take long, but the server never goes that long without sending something.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class Hub:
    """One server, reached with the user's token (if any). Safe to use from several threads."""

    def __init__(self, url: str, token: str | None = None, *, connections: int = 8):
        self.url = url.rstrip("/")
        self.authenticated = token is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT, limits=limits)

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, **options: Any) -> Any:
        """The JSON the server answers (None for an empty answer); an error answer raises."""
        response = self._request(method, path, **options)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._unexpected(response) from None

    @contextmanager
    def fetch(self, url: str, headers: dict[str, str] | None = None, **options: Any) -> Iterator[httpx.Response]:
        """Streams a GET of `url`: the API's own (with the token and `options`) or storage's (without them)."""
        own = url.startswith(self.url + "/") or url.startswith("/")
        try:
            if own:
                with self._http.stream("GET", url, headers=headers, **options) as response:
                    yield self._checked(response, stream=True)
            else:
                with httpx.stream("GET", url, headers=headers, timeout=TIMEOUT) as response:
                    yield self._checked(response, stream=True)
        except httpx.TransportError as error:
            raise self._unreachable(error, self.url if own else url.split("?")[0]) from None

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **options)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        return self._checked(response)

    def _checked(self, response: httpx.Response, stream: bool = False) -> httpx.Response:
        if response.is_success or (stream and response.is_redirect):  # a download may go to storage's URL
            return response
        if stream:
            response.read()
        raise self._refused(response)

    def _refused(self, response: httpx.Response) -> ServerError | SessionExpired:
        try:
            body = response.json()
            detail, code = body["detail"], body["error_code"]
        except (ValueError, KeyError, TypeError):
            return self._unexpected(response)
        if response.status_code == 401 and self.authenticated:
            return SessionExpired(f"the session has expired or was revoked ({detail}): {LOGIN_AGAIN}")
        wait = response.headers.get("retry-after")
        advice = f"; retry in {wait} s" if wait else ""
        return ServerError(f"{detail} ({code}){advice}", status=response.status_code, code=code, body=body)

    def _unexpected(self, response: httpx.Response) -> ServerError:
        return ServerError(
            f"unexpected answer from {self.url}: HTTP {response.status_code} {response.reason_phrase} "
            f"to {response.request.method} {response.request.url.path} (is it a Chat4All server?)",
            status=response.status_code,
        )

    def _unreachable(self, error: httpx.TransportError, where: str | None = None) -> Unreachable:
        reason = str(error) or type(error).__name__
        return Unreachable(f"cannot reach {where or self.url}: {reason}")
