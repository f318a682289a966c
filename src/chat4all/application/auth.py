"""Registering users, logging in and out, and resolving bearer tokens."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import attrs

from chat4all.application.errors import DuplicateKey
from chat4all.application.ports import Clock, IdGenerator, PasswordHasher, TokenIssuer, UnitOfWorkFactory
from chat4all.domain.errors import Conflict, NotAuthenticated, NotFound
from chat4all.domain.users import AccessToken, User, validate_new_password, validate_username

MAX_USERS_PAGE = 100


@attrs.frozen
class IssuedToken:
    access_token: str
    expires_in: int
    user_id: UUID


@attrs.define
class RegisterUser:
    uow: UnitOfWorkFactory
    hasher: PasswordHasher
    ids: IdGenerator
    clock: Clock

    async def execute(self, username: str, password: str) -> User:
        validate_username(username)
        validate_new_password(password)
        password_hash = await self.hasher.hash(password)
        async with self.uow() as uow:
            if await uow.users.get_by_username(username):
                raise Conflict(f"username {username!r} is taken", code="username_taken")
            user = User(self.ids.new_id(), username, password_hash, self.clock.now())
            try:
                await uow.users.add(user)
                await uow.commit()
            except DuplicateKey:  # a concurrent registration took the name first
                raise Conflict(f"username {username!r} is taken", code="username_taken") from None
        return user


@attrs.define
class Authenticate:
    """Trades a username and password for a bearer token.

    Unknown users and wrong passwords cost the same argon2 verification and get the
    same answer, so timing and wording reveal nothing about which usernames exist.
    """

    uow: UnitOfWorkFactory
    hasher: PasswordHasher
    tokens: TokenIssuer
    clock: Clock
    token_lifetime: timedelta
    _decoy_hash: str | None = None

    async def execute(self, username: str, password: str) -> IssuedToken:
        async with self.uow() as uow:
            user = await uow.users.get_by_username(username)
        if user is None:
            await self.hasher.verify(await self._decoy(), password)
            raise NotAuthenticated("invalid username or password", code="invalid_credentials")
        if not await self.hasher.verify(user.password_hash, password):
            raise NotAuthenticated("invalid username or password", code="invalid_credentials")
        secret = self.tokens.new_secret()
        now = self.clock.now()
        token = AccessToken(self.tokens.digest(secret), user.id, now, now + self.token_lifetime)
        async with self.uow() as uow:
            await uow.tokens.add(token)
            await uow.commit()
        return IssuedToken(secret, int(self.token_lifetime.total_seconds()), user.id)

    async def _decoy(self) -> str:
        if self._decoy_hash is None:
            self._decoy_hash = await self.hasher.hash("decoy-password-for-unknown-users")
        return self._decoy_hash


@attrs.define
class ResolveToken:
    uow: UnitOfWorkFactory
    tokens: TokenIssuer
    clock: Clock

    async def execute(self, secret: str) -> User:
        async with self.uow() as uow:
            token = await uow.tokens.get(self.tokens.digest(secret))
            if token is None or not token.is_valid_at(self.clock.now()):
                raise NotAuthenticated("the access token is missing, invalid, expired or revoked", code="invalid_token")
            user = await uow.users.get(token.user_id)
        if user is None:
            raise NotAuthenticated("the access token's user no longer exists", code="invalid_token")
        return user


@attrs.define
class Logout:
    uow: UnitOfWorkFactory
    tokens: TokenIssuer
    clock: Clock

    async def execute(self, secret: str) -> None:
        async with self.uow() as uow:
            await uow.tokens.revoke(self.tokens.digest(secret), self.clock.now())
            await uow.commit()


@attrs.define
class FindUsers:
    uow: UnitOfWorkFactory

    async def execute(self, *, username: str | None = None, limit: int = 50, offset: int = 0) -> list[User]:
        async with self.uow() as uow:
            return await uow.users.list(username=username, limit=min(limit, MAX_USERS_PAGE), offset=offset)

    async def get(self, user_id: UUID) -> User:
        async with self.uow() as uow:
            user = await uow.users.get(user_id)
        if user is None:
            raise NotFound("no such user", code="user_not_found")
        return user
