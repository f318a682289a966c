"""Where the client keeps its files, after the XDG Base Directory layout: the token in the user's
config directory (`~/.config/chat4all`), upload progress in the state directory
(`~/.local/state/chat4all`). `XDG_CONFIG_HOME` and `XDG_STATE_HOME` move them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

APP = "chat4all"


def _base(variable: str, default: str) -> Path:
    value = os.environ.get(variable, "")
    # The specification says relative values are to be ignored.
    return Path(value) if os.path.isabs(value) else Path.home() / default


def config_dir() -> Path:
    return _base("XDG_CONFIG_HOME", ".config") / APP


def state_dir() -> Path:
    return _base("XDG_STATE_HOME", ".local/state") / APP


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
