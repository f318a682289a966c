"""Secrets: password hashes and access tokens."""

from __future__ import annotations

from typing import Protocol


class PasswordHasher(Protocol):
    """Slow by design; implementations must not block the event loop."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...


class TokenIssuer(Protocol):
    def new_secret(self) -> str: ...

    def digest(self, secret: str) -> str: ...
