"""Where the client keeps its files: the token in the user's config directory, upload progress
in the state directory (`~/.config/chat4all` and `~/.local/state/chat4all` by default). The
entrypoint finds the base directories (the settings module reads the environment) and hands them
to the commands."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

APP = "chat4all"


@dataclass(frozen=True)
class Directories:
    config: Path  # the saved token
    state: Path  # unfinished uploads

    @classmethod
    def under(cls, config_home: Path, state_home: Path) -> Directories:
        """The client's own directories within the XDG base directories."""
        return cls(config_home / APP, state_home / APP)


def write_private(path: Path, text: str) -> None:
    """Replaces `path` with `text` in one step, readable and writable by its owner only.

    The text goes into a new file created with mode 0600 from the start (never wider, whatever the
    umask, not even for a moment) which is then renamed over `path`: a reader sees the old content
    or the new one, never a half-written file, even if the process is killed meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
