"""The failures the client reports: one line on stderr, then a non-zero exit status."""

from __future__ import annotations

LOGIN_AGAIN = "run `chat4all login --url URL USERNAME` again"


class ClientError(Exception):
    """A failure told to the user in one line (the message), after which the command exits with `exit_code`."""

    exit_code = 1


class NotLoggedIn(ClientError):
    exit_code = 3


class SessionExpired(ClientError):
    """The saved token is past its lifetime or was revoked (a logout elsewhere, a password change)."""

    exit_code = 3


class Unreachable(ClientError):
    """No answer from the server: a wrong address, the server down, the network lost."""

    exit_code = 4


class FileChanged(ClientError):
    """The local file is not the one an unfinished upload began with."""

    exit_code = 5


class ServerError(ClientError):
    """The server refused the request; `code` is its `error_code`, `body` its whole answer."""

    def __init__(self, message: str, *, status: int, code: str | None = None, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body or {}
