"""Cached tokens in steady use are reconfirmed in bulk: no lookup per request, and a revocation
still takes effect within the cache time."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from chat4all.domain.errors import NotAuthenticated, Unavailable

PASSWORD = "correct horse battery"
CACHE_FOR = timedelta(seconds=5)


class CountingDatabase:
    """The hub's in-memory database as `ResolveToken` sees it, counting transactions; it can be
    made unreachable."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self.transactions = 0
        self.down = False

    @contextlib.asynccontextmanager
    async def uow(self):
        self.transactions += 1
        if self.down:
            raise Unavailable("database unreachable")
        async with self.hub.uow() as uow:
            yield uow


def resolver(hub):
    from chat4all.adapters.caching import ExpiringCache
    from chat4all.application.auth import TOKEN_CACHE_SIZE, Logout, ResolveToken

    database, cache = CountingDatabase(hub), ExpiringCache(TOKEN_CACHE_SIZE)
    resolve = ResolveToken(database.uow, hub.tokens, hub.clock, CACHE_FOR, cache)
    return resolve, Logout(hub.uow, hub.tokens, hub.clock, cache), database


async def logged_in(hub, name: str):
    user = await hub.user(name)
    return user, (await hub.authenticate.execute(name, PASSWORD)).access_token


async def rejected(resolve, token: str) -> None:
    with pytest.raises(NotAuthenticated):
        await resolve.execute(token)


async def test_tokens_in_steady_use_cost_one_query_per_check_and_none_per_request(hub):
    resolve, _, database = resolver(hub)
    clients = [await logged_in(hub, name) for name in ("alice", "bob", "carol")]
    for user, token in clients:
        assert await resolve.execute(token) == user
    assert database.transactions == 3  # each token's first request looks it up
    for _ in range(20):  # ten times the cache time
        hub.clock.advance(resolve.reconfirm_every)
        for user, token in clients:
            assert await resolve.execute(token) == user
        await resolve.reconfirm_used()
    assert database.transactions == 3 + 20


async def test_a_token_used_less_often_than_the_cache_time_still_costs_no_lookup(hub):
    from chat4all.application.auth import RECONFIRM_AFTER_USE

    resolve, _, database = resolver(hub)
    alice, token = await logged_in(hub, "alice")
    assert await resolve.execute(token) == alice
    checks = 0
    for _ in range(5):  # a request every 12 s, each past the 5 s its entry had when it was used
        for _ in range(int(timedelta(seconds=12) / resolve.reconfirm_every)):
            hub.clock.advance(resolve.reconfirm_every)
            await resolve.reconfirm_used()
            checks += 1
        assert await resolve.execute(token) == alice
    assert database.transactions == 1 + checks
    await resolve.reconfirm_used()  # the check after its last use
    for _ in range(int((RECONFIRM_AFTER_USE + CACHE_FOR) / resolve.reconfirm_every)):
        hub.clock.advance(resolve.reconfirm_every)
        await resolve.reconfirm_used()
    asked = database.transactions
    hub.clock.advance(resolve.reconfirm_every)
    await resolve.reconfirm_used()
    assert database.transactions == asked  # no longer in use: no longer asked about
    assert asked <= 1 + checks + 1 + RECONFIRM_AFTER_USE / resolve.reconfirm_every


async def test_a_revocation_by_another_process_ends_the_token_at_the_next_check(hub):
    resolve, _, _ = resolver(hub)
    alice, token = await logged_in(hub, "alice")
    assert await resolve.execute(token) == alice
    await hub.logout.execute(token)  # another API process: its own cache, same database
    assert await resolve.execute(token) == alice  # not seen yet
    assert await resolve.reconfirm_used() == 1
    await rejected(resolve, token)


async def test_when_the_checks_fail_a_revoked_token_still_ends_within_the_cache_time(hub):
    resolve, _, database = resolver(hub)
    alice, token = await logged_in(hub, "alice")
    assert await resolve.execute(token) == alice
    hub.clock.advance(resolve.reconfirm_every)
    assert await resolve.execute(token) == alice
    confirmed_at = hub.clock.now()
    await resolve.reconfirm_used()
    await hub.logout.execute(token)
    hub.clock.advance(resolve.reconfirm_every)
    assert await resolve.execute(token) == alice
    database.down = True
    with pytest.raises(Unavailable):
        await resolve.reconfirm_used()
    database.down = False
    hub.clock.set(confirmed_at + CACHE_FOR)
    await rejected(resolve, token)


async def test_a_check_never_keeps_a_token_past_its_expiry(hub):
    resolve, _, _ = resolver(hub)
    alice, token = await logged_in(hub, "alice")
    expiry = hub.store.tokens[hub.tokens.digest(token)].expires_at
    hub.clock.set(expiry - timedelta(seconds=1))
    assert await resolve.execute(token) == alice
    await resolve.reconfirm_used()
    hub.clock.set(expiry)
    await rejected(resolve, token)


async def test_a_logout_through_this_process_is_not_undone_by_a_check(hub):
    resolve, logout, _ = resolver(hub)
    alice, token = await logged_in(hub, "alice")
    assert await resolve.execute(token) == alice
    await logout.execute(token)
    await resolve.reconfirm_used()
    await rejected(resolve, token)


async def test_without_a_cache_there_is_nothing_to_check(hub):
    from chat4all.adapters.caching import ExpiringCache
    from chat4all.application.auth import TOKEN_CACHE_SIZE, ResolveToken

    database = CountingDatabase(hub)
    resolve = ResolveToken(database.uow, hub.tokens, hub.clock, timedelta(0), ExpiringCache(TOKEN_CACHE_SIZE))
    alice, token = await logged_in(hub, "alice")
    assert await resolve.execute(token) == alice
    assert await resolve.reconfirm_used() == 0
    assert database.transactions == 1


async def test_a_lookup_that_waited_long_for_a_connection_still_leaves_the_token_cached(hub):
    from chat4all.adapters.caching import ExpiringCache
    from chat4all.application.auth import TOKEN_CACHE_SIZE, ResolveToken

    lookups = 0

    @contextlib.asynccontextmanager
    async def overloaded_uow():
        nonlocal lookups
        lookups += 1
        hub.clock.advance(CACHE_FOR * 2)  # waiting for a free connection
        async with hub.uow() as uow:
            yield uow

    resolve = ResolveToken(overloaded_uow, hub.tokens, hub.clock, CACHE_FOR, ExpiringCache(TOKEN_CACHE_SIZE))
    alice, token = await logged_in(hub, "alice")
    assert await resolve.execute(token) == alice
    assert await resolve.execute(token) == alice
    assert lookups == 1
    read_at = hub.clock.now()
    await hub.logout.execute(token)  # another process
    hub.clock.set(read_at + CACHE_FOR)
    await rejected(resolve, token)
