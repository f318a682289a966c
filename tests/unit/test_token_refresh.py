"""Cached tokens due for refresh are served at once and looked up once in the background, and what
that lookup finds (a revocation, a user gone, a logout racing it) takes effect at once."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from chat4all.domain.errors import NotAuthenticated, Unavailable
from tests.unit.token_cache_fixtures import CACHE_FOR, DUE, PASSWORD, alice_cached_by, refreshing_resolver, settle


async def test_a_token_due_for_refresh_is_served_at_once_and_looked_up_once_in_the_background(hub):
    resolve, database = refreshing_resolver(hub)
    cached_at = hub.clock.now()
    alice, token = await alice_cached_by(hub, resolve)
    assert database.lookups == 1

    database.open.clear()  # the refreshing lookup will hang until released
    hub.clock.advance(DUE)
    users = await asyncio.wait_for(asyncio.gather(*(resolve.execute(token) for _ in range(30))), 1)
    await settle()
    assert users == [alice] * 30
    assert database.lookups == 2  # one background lookup, however many requests saw it due

    database.open.set()
    await settle()
    # The refreshed entry lasts CACHE_FOR from the refresh: prove it by taking the database away.
    database.down = True
    hub.clock.set(cached_at + DUE + CACHE_FOR - timedelta(microseconds=1))
    assert await resolve.execute(token) == alice
    hub.clock.set(cached_at + DUE + CACHE_FOR)
    with pytest.raises(Unavailable):
        await resolve.execute(token)


async def test_a_revocation_seen_by_a_background_lookup_takes_effect_at_once(hub):
    resolve, _ = refreshing_resolver(hub)
    alice, token = await alice_cached_by(hub, resolve)
    await hub.logout.execute(token)  # another API process: its own cache, same database

    hub.clock.advance(DUE)
    assert await resolve.execute(token) == alice  # still cached; this request starts the lookup
    await settle()
    await rejected_by(resolve, token)  # well before the entry's end


async def test_a_background_lookup_that_finds_the_user_gone_ends_the_entry_at_once(hub):
    resolve, _ = refreshing_resolver(hub)
    alice, token = await alice_cached_by(hub, resolve)
    del hub.store.users[alice.id]  # deleted through another process

    hub.clock.advance(DUE)
    assert await resolve.execute(token) == alice
    await settle()
    await rejected_by(resolve, token)


async def test_a_logout_racing_a_background_lookup_is_not_undone_by_it(hub):
    from chat4all.application.auth import Logout

    resolve, database = refreshing_resolver(hub)
    logout = Logout(hub.uow, hub.tokens, hub.clock, resolve.cache)  # this process's logout
    alice, token = await alice_cached_by(hub, resolve)

    @contextlib.asynccontextmanager
    async def slow_uow():
        # The token is read as still valid; the logout lands before the lookup caches it.
        async with hub.uow() as uow:
            yield uow
        await database.open.wait()

    resolve.uow = slow_uow
    database.open.clear()
    hub.clock.advance(DUE)
    assert await resolve.execute(token) == alice  # starts the background lookup
    await settle()
    await logout.execute(token)
    database.open.set()
    await settle()
    await rejected_by(resolve, token)


async def test_a_request_after_a_logout_does_not_join_a_lookup_that_began_before_it(hub):
    from chat4all.application.auth import Logout

    await hub.user("alice")
    resolve, database = refreshing_resolver(hub)
    logout = Logout(hub.uow, hub.tokens, hub.clock, resolve.cache)
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    await resolve.execute(token)
    read_as_valid = asyncio.Event()

    @contextlib.asynccontextmanager
    async def slow_uow():
        async with hub.uow() as uow:
            yield uow
        read_as_valid.set()
        await database.open.wait()

    resolve.uow = slow_uow
    database.open.clear()
    hub.clock.advance(DUE)
    await resolve.execute(token)  # starts the background lookup, which reads the token as valid
    await read_as_valid.wait()
    await logout.execute(token)
    resolve.uow = hub.uow  # lookups from now on are not held

    # Before the held lookup finishes; joining it would wait for it (and then let the token in).
    await asyncio.wait_for(rejected_by(resolve, token), 5)
    database.open.set()
    await settle()
    await rejected_by(resolve, token)


async def test_tokens_cached_together_are_not_looked_up_again_together(hub):
    resolve, database = refreshing_resolver(hub)
    tokens = []
    for number in range(50):
        await hub.user(f"user{number}")
        tokens.append((await hub.authenticate.execute(f"user{number}", PASSWORD)).access_token)
    cached_at = hub.clock.now()
    for token in tokens:
        await resolve.execute(token)
    assert database.lookups == 50

    lookups_per_step = []  # tokens read again, whether alone or together
    step = CACHE_FOR / 100
    while hub.clock.now() + step < cached_at + CACHE_FOR:
        hub.clock.advance(step)
        before = database.tokens_read
        for token in tokens:
            await resolve.execute(token)
        await settle()
        lookups_per_step.append(database.tokens_read - before)

    assert sum(lookups_per_step) >= 50  # every token was refreshed before its entry ended
    assert max(lookups_per_step) < 50  # and no moment sent all of them to the database
    assert sum(1 for lookups in lookups_per_step if lookups) >= 5
    assert sum(lookups_per_step[:49]) == 0  # none before half of CACHE_FOR


async def rejected_by(resolve, secret: str) -> None:
    with pytest.raises(NotAuthenticated) as raised:
        await resolve.execute(secret)
    assert raised.value.code == "invalid_token"
