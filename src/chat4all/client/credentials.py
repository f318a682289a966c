"""The token `chat4all login` saves: `credentials.json` in the user's config directory, mode 0600."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from chat4all.client.errors import LOGIN_AGAIN, NotLoggedIn, SessionExpired
from chat4all.client.paths import Directories, write_private


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    user_id: str
    access_token: str
    expires_at: float  # seconds since the epoch


def credentials_path(directories: Directories) -> Path:
    return directories.config / "credentials.json"


def save_credentials(directories: Directories, credentials: Credentials) -> Path:
    path = credentials_path(directories)
    write_private(path, json.dumps(asdict(credentials), indent=2) + "\n")
    return path


def load_credentials(directories: Directories, now: float | None = None) -> Credentials:
    """The saved credentials; a token past its lifetime is refused here, without asking the server."""
    path = credentials_path(directories)
    try:
        credentials = Credentials(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise NotLoggedIn("not logged in: run `chat4all login --url URL USERNAME` first") from None
    except (ValueError, TypeError) as error:
        raise NotLoggedIn(f"{path} is not readable ({error}): {LOGIN_AGAIN}") from None
    if credentials.expires_at <= (time.time() if now is None else now):
        raise SessionExpired(f"the session of {credentials.username} on {credentials.url} has expired: {LOGIN_AGAIN}")
    return credentials


def forget_credentials(directories: Directories) -> bool:
    """Removes the saved token; False if there was none."""
    try:
        credentials_path(directories).unlink()
    except FileNotFoundError:
        return False
    return True
