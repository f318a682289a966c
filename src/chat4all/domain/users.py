from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.domain.errors import InvalidInput

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def is_valid_username(username: str) -> bool:
    return USERNAME_PATTERN.fullmatch(username) is not None


def validate_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInput(
            "username must be 3-32 characters of letters, digits, '_', '.' or '-'",
            field_errors={"username": ["3-32 characters of [A-Za-z0-9_.-]"]},
        )
    return username


def validate_new_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must be {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters",
            field_errors={"password": [f"{MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters"]},
        )
    return password


@attrs.define(eq=False)
class User:
    id: UUID
    username: str
    password_hash: str
    created_at: datetime

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


@attrs.frozen
class AccessToken:
    """An issued bearer token, known to the server only by the hash of its secret."""

    token_hash: str
    user_id: UUID
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def is_valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at
