"""Fast, predictable stand-ins for password hashing and token secrets. Never use outside tests."""

from __future__ import annotations

import hashlib
import itertools

_PREFIX = "plain-test-hash:"


class PlainTestHasher:
    """Stores passwords with a visible prefix instead of a slow hash."""

    async def hash(self, password: str) -> str:
        return _PREFIX + password

    async def verify(self, password_hash: str, password: str) -> bool:
        return password_hash == _PREFIX + password


class PredictableTokenIssuer:
    """Secrets numbered token-1, token-2...; digests are real SHA-256 like the production issuer."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new_secret(self) -> str:
        return f"token-{next(self._counter)}"

    def digest(self, secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()
