"""Tokens cached in the process: never past their expiry, a logout here or elsewhere still takes
effect, and an entry that ends costs one lookup however many requests arrive."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from chat4all.domain.errors import NotAuthenticated
from tests.unit.token_cache_fixtures import CACHE_FOR, PASSWORD, alice_cached_by


def cached_resolver_and_logout(hub):
    from chat4all.adapters.caching import ExpiringCache
    from chat4all.application.auth import TOKEN_CACHE_SIZE, Logout, ResolveToken

    cache = ExpiringCache(TOKEN_CACHE_SIZE)
    return ResolveToken(hub.uow, hub.tokens, hub.clock, CACHE_FOR, cache), Logout(hub.uow, hub.tokens, hub.clock, cache)


async def test_a_cached_token_still_stops_working_at_its_expiry(hub):
    alice = await hub.user("alice")
    resolve, _ = cached_resolver_and_logout(hub)
    issued = await hub.authenticate.execute("alice", PASSWORD)
    expiry = hub.clock.now() + timedelta(seconds=issued.expires_in)
    hub.clock.set(expiry - timedelta(seconds=1))
    assert await resolve.execute(issued.access_token) == alice  # cached now, for less than CACHE_FOR
    hub.clock.set(expiry)
    with pytest.raises(NotAuthenticated):
        await resolve.execute(issued.access_token)


async def test_a_logout_through_the_same_process_is_not_hidden_by_the_cache(hub):
    await hub.user("alice")
    resolve, logout = cached_resolver_and_logout(hub)
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    await resolve.execute(token)
    await logout.execute(token)
    with pytest.raises(NotAuthenticated):
        await resolve.execute(token)


async def test_a_revocation_by_another_process_takes_effect_within_the_cache_time(hub):
    resolve, _ = cached_resolver_and_logout(hub)
    alice, token = await alice_cached_by(hub, resolve)
    await hub.logout.execute(token)  # another API process: its own cache, same database
    hub.clock.advance(CACHE_FOR - timedelta(microseconds=1))
    assert await resolve.execute(token) == alice
    hub.clock.advance(timedelta(microseconds=1))
    with pytest.raises(NotAuthenticated):
        await resolve.execute(token)


async def test_requests_arriving_as_a_cached_token_expires_cost_one_lookup(hub):
    from chat4all.adapters.caching import ExpiringCache
    from chat4all.application.auth import TOKEN_CACHE_SIZE, ResolveToken

    alice = await hub.user("alice")
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    lookups = 0

    @contextlib.asynccontextmanager
    async def counting_uow():
        nonlocal lookups
        lookups += 1
        await asyncio.sleep(0.01)  # a database round trip, during which more requests arrive
        async with hub.uow() as uow:
            yield uow

    resolve = ResolveToken(counting_uow, hub.tokens, hub.clock, CACHE_FOR, ExpiringCache(TOKEN_CACHE_SIZE))
    assert await resolve.execute(token) == alice
    hub.clock.advance(CACHE_FOR)  # the entry has just ended

    users = await asyncio.gather(*(resolve.execute(token) for _ in range(30)))

    assert users == [alice] * 30
    assert lookups == 2
