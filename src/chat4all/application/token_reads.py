"""Bearer tokens read from the database together: the lookups `ResolveToken` makes when a token
is not cached, one transaction for all those asked in one turn (see `batched_loads`)."""

from __future__ import annotations

from datetime import datetime

import attrs

from chat4all.application.batched_loads import BatchedLoads
from chat4all.application.ports import Clock, UnitOfWorkFactory
from chat4all.domain.users import AccessToken, User


@attrs.frozen
class TokenRead:
    """A token as the database had it, with its user (None: gone), and `read_at`: a moment taken
    once the read held its connection, before the token was read."""

    read_at: datetime
    token: AccessToken
    user: User | None


class TokenReads:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        self._loads: BatchedLoads[str, TokenRead] = BatchedLoads(self._read_many)

    async def read(self, digest: str) -> TokenRead | None:
        """The token with this digest (None: unknown), valid or not."""
        return await self._loads.load(digest)

    async def _read_many(self, digests: list[str]) -> dict[str, TokenRead]:
        async with self._uow() as uow:
            read_at = self._clock.now()
            tokens = await uow.tokens.get_many(digests)
            users = await uow.users.get_many(sorted({token.user_id for token in tokens.values()}))
        return {digest: TokenRead(read_at, token, users.get(token.user_id)) for digest, token in tokens.items()}
