from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import Row, exc, insert, select, update

from chat4all.adapters.sql.base import SqlRepository, one_of
from chat4all.adapters.sql.errors import is_unique_violation
from chat4all.adapters.sql.tables import access_tokens, users
from chat4all.application.errors import DuplicateKey
from chat4all.domain.users import AccessToken, User


def _user(row: Row) -> User:
    return User(row.id, row.username, row.password_hash, row.created_at)


def _token(row: Row) -> AccessToken:
    return AccessToken(row.token_hash, row.user_id, row.issued_at, row.expires_at, row.revoked_at)


class SqlUserRepository(SqlRepository):
    async def add(self, user: User) -> None:
        try:
            await self._execute(
                insert(users).values(
                    id=user.id, username=user.username, password_hash=user.password_hash, created_at=user.created_at
                )
            )
        except exc.IntegrityError as error:
            if is_unique_violation(error):
                raise DuplicateKey("a user with this id or username already exists") from error
            raise

    async def get(self, user_id: UUID) -> User | None:
        row = (await self._execute(select(users).where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def get_many(self, user_ids: Sequence[UUID]) -> dict[UUID, User]:
        if not user_ids:
            return {}
        rows = await self._execute(select(users).where(one_of(users.c.id, sorted(set(user_ids)), self._dialect)))
        return {row.id: _user(row) for row in rows}

    async def get_by_username(self, username: str) -> User | None:
        row = (await self._execute(select(users).where(users.c.username == username))).first()
        return _user(row) if row else None

    async def existing_ids(self, user_ids: builtins.list[UUID]) -> set[UUID]:
        if not user_ids:
            return set()
        result = await self._execute(select(users.c.id).where(users.c.id.in_(set(user_ids))))
        return set(result.scalars())

    async def list(self, *, username: str | None, limit: int, offset: int) -> builtins.list[User]:
        query = select(users).order_by(users.c.username).limit(limit).offset(offset)
        if username is not None:
            query = query.where(users.c.username == username)
        return [_user(row) for row in await self._execute(query)]


class SqlTokenRepository(SqlRepository):
    async def add(self, token: AccessToken) -> None:
        try:
            await self._execute(
                insert(access_tokens).values(
                    token_hash=token.token_hash,
                    user_id=token.user_id,
                    issued_at=token.issued_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                )
            )
        except exc.IntegrityError as error:
            if is_unique_violation(error):
                raise DuplicateKey("this token already exists") from error
            raise

    async def get(self, token_hash: str) -> AccessToken | None:
        row = (await self._execute(select(access_tokens).where(access_tokens.c.token_hash == token_hash))).first()
        return None if row is None else _token(row)

    async def get_many(self, token_hashes: Sequence[str]) -> dict[str, AccessToken]:
        if not token_hashes:
            return {}
        wanted = one_of(access_tokens.c.token_hash, sorted(set(token_hashes)), self._dialect)
        return {row.token_hash: _token(row) for row in await self._execute(select(access_tokens).where(wanted))}

    async def revoke(self, token_hash: str, at: datetime) -> None:
        await self._execute(
            update(access_tokens)
            .where(access_tokens.c.token_hash == token_hash, access_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def valid_among(self, token_hashes: Sequence[str], now: datetime) -> set[str]:
        return set(await self.expiries_among(token_hashes, now))

    async def expiries_among(self, token_hashes: Sequence[str], now: datetime) -> dict[str, datetime]:
        if not token_hashes:
            return {}
        valid = select(access_tokens.c.token_hash, access_tokens.c.expires_at).where(
            one_of(access_tokens.c.token_hash, sorted(set(token_hashes)), self._dialect),
            access_tokens.c.revoked_at.is_(None),
            access_tokens.c.expires_at > now,
        )
        return {row.token_hash: row.expires_at for row in await self._execute(valid)}
