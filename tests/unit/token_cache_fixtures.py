"""What the token cache tests share: a counting database that can hold or refuse lookups, and a
resolver over it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from chat4all.domain.errors import Unavailable

PASSWORD = "correct horse battery"


CACHE_FOR = timedelta(seconds=5)


async def alice_cached_by(hub, resolve):
    """Alice, logged in, and her token resolved once through `resolve` (cached there from now)."""
    alice = await hub.user("alice")
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    assert await resolve.execute(token) == alice
    return alice, token


class Database:
    """The hub's in-memory database as `ResolveToken` sees it, counting lookups; it can be made to
    hold lookups until released, or to be unreachable."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self.lookups = 0  # transactions (tokens missed together share one)
        self.tokens_read = 0
        self.lookup_times: list[datetime] = []  # by the hub's clock
        self.held = 0  # lookups waiting for `open`
        self.open = asyncio.Event()
        self.open.set()
        self.down = False

    @contextlib.asynccontextmanager
    async def uow(self):
        self.lookups += 1
        self.lookup_times.append(self.hub.clock.now())
        self.held += 1
        try:
            await self.open.wait()
        finally:
            self.held -= 1
        if self.down:
            raise Unavailable("database unreachable")
        async with self.hub.uow() as uow:
            get_many = uow.tokens.get_many

            async def counted(digests):
                self.tokens_read += len(digests)
                return await get_many(digests)

            uow.tokens.get_many = counted
            yield uow


async def settle() -> None:
    """Lets background lookups run to their end (the in-memory database never really waits)."""
    for _ in range(10):
        await asyncio.sleep(0)


def refreshing_resolver(hub):
    from chat4all.adapters.caching import ExpiringCache
    from chat4all.application.auth import TOKEN_CACHE_SIZE, ResolveToken

    database = Database(hub)
    return ResolveToken(database.uow, hub.tokens, hub.clock, CACHE_FOR, ExpiringCache(TOKEN_CACHE_SIZE)), database


# Past every entry's refresh point (at most 0.8 of CACHE_FOR), before its end.
DUE = CACHE_FOR * 0.8
