"""Reading one CHAT4ALL_* value from the environment's mapping: parsed, range-checked, and
refused with an error that names the variable (the settings module reads the environment)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlparse

import attrs

# Kafka topic, group and instance names: what every broker and file system accepts.
KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]+")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


@attrs.define
class EnvReader:
    env: Mapping[str, str]

    def text(self, name: str, default: str | None) -> str:
        value = self.env.get(name) or default
        if value is None:
            raise SettingsError(f"{name} is required for this profile")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self.env.get(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise SettingsError(f"{name} must be between {minimum} and {maximum or 'any'}, got {value}")
        return value

    def fraction(self, name: str, default: float) -> float:
        raw = self.env.get(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
        if not 0.0 <= value <= 1.0:
            raise SettingsError(f"{name} must be between 0 and 1, got {value}")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.env.get(name) or default
        if value not in options:
            raise SettingsError(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return value

    def name(self, name: str, default: str, *, maximum: int) -> str:
        """A Kafka name (or part of one): letters, digits, '.', '_' and '-'."""
        value = self.env.get(name) or default
        if value and (len(value) > maximum or not KAFKA_NAME.fullmatch(value)):
            raise SettingsError(
                f"{name} may hold only letters, digits, '.', '_' and '-' ({maximum} at most), got {value!r}"
            )
        return value

    def url(self, name: str, default: str | None) -> str:
        value = self.text(name, default)
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError(f"{name} must be an http(s) URL, got {value!r}")
        return value.rstrip("/")
