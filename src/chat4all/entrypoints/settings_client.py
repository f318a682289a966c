"""Where the command-line client keeps its files, after the XDG Base Directory layout: the token
in the user's config directory (`$XDG_CONFIG_HOME`, default `~/.config`), the state of unfinished
uploads in the state directory (`$XDG_STATE_HOME`, default `~/.local/state`). The client reads
nothing else from the environment, and none of the server's settings."""

from __future__ import annotations

from pathlib import Path

import attrs

from chat4all.entrypoints.env_values import EnvReader


@attrs.frozen
class ClientSettings:
    config_home: Path
    state_home: Path


def load_client_settings(reader: EnvReader, home: Path) -> ClientSettings:
    return ClientSettings(
        config_home=_base_directory(reader, "XDG_CONFIG_HOME", home / ".config"),
        state_home=_base_directory(reader, "XDG_STATE_HOME", home / ".local" / "state"),
    )


def _base_directory(reader: EnvReader, name: str, default: Path) -> Path:
    value = Path(reader.env.get(name) or "")
    # The specification says relative values are to be ignored.
    return value if value.is_absolute() else default
