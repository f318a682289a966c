"""Password hashing (argon2id) and opaque bearer tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from concurrent.futures import ThreadPoolExecutor

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

# RFC 9106's second recommended option (64 MiB, 3 passes), with 2 lanes for a 2-core host.
DEFAULT_ARGON2 = {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 2}
TOKEN_BYTES = 32


class Argon2PasswordHasher:
    """argon2id in a small thread pool: a verification takes tens of milliseconds and must not stall the loop."""

    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int, workers: int = 2):
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=argon2.Type.ID
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


class OpaqueTokenIssuer:
    """256-bit random secrets; only their SHA-256 is stored, so a leaked table grants nothing."""

    def new_secret(self) -> str:
        return secrets.token_urlsafe(TOKEN_BYTES)

    def digest(self, secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()
