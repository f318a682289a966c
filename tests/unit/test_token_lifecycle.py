"""Bearer tokens: random, stored as digests, valid until their declared expiry, revocable at once."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
from datetime import datetime, timedelta

import pytest

from chat4all.adapters.security import TOKEN_BYTES, OpaqueTokenIssuer
from chat4all.domain.errors import NotAuthenticated, Unavailable

PASSWORD = "correct horse battery"


async def rejected(hub, secret: str) -> None:
    with pytest.raises(NotAuthenticated) as raised:
        await hub.resolve_token.execute(secret)
    assert raised.value.code == "invalid_token"


async def test_a_token_works_until_its_declared_expiry_and_not_at_it(hub):
    alice = await hub.user("alice")
    issued_at = hub.clock.now()
    issued = await hub.authenticate.execute("alice", PASSWORD)
    expiry = issued_at + timedelta(seconds=issued.expires_in)
    assert hub.store.tokens[hub.tokens.digest(issued.access_token)].expires_at == expiry
    for moment in (issued_at, issued_at + timedelta(minutes=30), expiry - timedelta(microseconds=1)):
        hub.clock.set(moment)
        assert await hub.resolve_token.execute(issued.access_token) == alice
    for moment in (expiry, expiry + timedelta(microseconds=1), expiry + timedelta(days=365)):
        hub.clock.set(moment)
        await rejected(hub, issued.access_token)


async def test_the_declared_lifetime_is_the_configured_one(hub):
    await hub.user("alice")
    issued = await hub.authenticate.execute("alice", PASSWORD)
    assert issued.expires_in == int(hub.token_lifetime.total_seconds()) == 3600


async def test_logout_revokes_at_once_and_for_good(hub):
    alice = await hub.user("alice")
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    other = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    await hub.logout.execute(token)
    await rejected(hub, token)  # same instant: no grace period
    hub.clock.advance(timedelta(minutes=59))
    await rejected(hub, token)
    assert await hub.resolve_token.execute(other) == alice


async def test_an_expired_or_unknown_token_logs_out_harmlessly(hub):
    await hub.user("alice")
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    hub.clock.advance(hub.token_lifetime)
    await hub.logout.execute(token)
    await hub.logout.execute("never-issued")
    await rejected(hub, token)


@pytest.mark.parametrize("mangle", [str.upper, lambda s: s + " ", lambda s: " " + s, lambda s: s[:-1], lambda s: s + "x"])
async def test_only_the_exact_secret_is_accepted(hub, mangle):
    await hub.user("alice")
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    await rejected(hub, mangle(token))


async def test_only_the_digest_is_stored(hub):
    await hub.user("alice")
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    stored = next(iter(hub.store.tokens.values()))
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(hub.store.tokens)


def test_production_secrets_carry_256_random_bits():
    issuer = OpaqueTokenIssuer()
    secrets = {issuer.new_secret() for _ in range(2000)}
    assert len(secrets) == 2000
    for secret in list(secrets)[:50]:
        assert len(base64.urlsafe_b64decode(secret + "=")) == TOKEN_BYTES == 32
    assert issuer.digest("abc") == hashlib.sha256(b"abc").hexdigest()


CACHE_FOR = timedelta(seconds=5)


def cached_resolver_and_logout(hub):
    from chat4all.adapters.caching import ExpiringCache
    from chat4all.application.auth import TOKEN_CACHE_SIZE, Logout, ResolveToken

    cache = ExpiringCache(TOKEN_CACHE_SIZE)
    return ResolveToken(hub.uow, hub.tokens, hub.clock, CACHE_FOR, cache), Logout(hub.uow, hub.tokens, hub.clock, cache)


async def alice_cached_by(hub, resolve):
    """Alice, logged in, and her token resolved once through `resolve` (cached there from now)."""
    alice = await hub.user("alice")
    token = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    assert await resolve.execute(token) == alice
    return alice, token


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


async def test_a_background_lookup_during_an_outage_leaves_the_token_working_until_its_entry_ends(hub):
    resolve, database = refreshing_resolver(hub)
    cached_at = hub.clock.now()
    alice, token = await alice_cached_by(hub, resolve)
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        database.down = True
        hub.clock.advance(DUE)
        assert await resolve.execute(token) == alice
        await settle()
        assert database.lookups == 2  # it was tried, and failed
        hub.clock.set(cached_at + CACHE_FOR - timedelta(microseconds=1))
        assert await resolve.execute(token) == alice
        await settle()
        hub.clock.set(cached_at + CACHE_FOR)
        with pytest.raises(Unavailable):
            await resolve.execute(token)
        gc.collect()
        assert reported == []  # the failed background lookups were not logged as lost errors
    finally:
        loop.set_exception_handler(None)


async def test_an_outage_costs_a_busy_cached_token_one_lookup_per_back_off_not_one_per_request(hub):
    from chat4all.adapters.caching import FIRST_REFRESH_BACKOFF

    resolve, database = refreshing_resolver(hub)
    cached_at = hub.clock.now()
    alice, token = await alice_cached_by(hub, resolve)
    database.down = True
    database.lookup_times.clear()

    # From past the refresh point to the entry's end (a fifth of CACHE_FOR), 20 requests every 10 ms.
    hub.clock.advance(DUE)
    while hub.clock.now() < cached_at + CACHE_FOR:
        users = await asyncio.gather(*(resolve.execute(token) for _ in range(20)))
        assert users == [alice] * 20  # served from the entry throughout
        await settle()
        hub.clock.advance(timedelta(milliseconds=10))

    lookups = database.lookup_times
    assert lookups[0] == cached_at + DUE  # the first request past the refresh point tried at once
    gaps = [later - earlier for earlier, later in zip(lookups, lookups[1:], strict=False)]
    assert all(gap >= FIRST_REFRESH_BACKOFF for gap in gaps), gaps
    assert 2 <= len(lookups) <= (CACHE_FOR - DUE) / FIRST_REFRESH_BACKOFF + 1, lookups
    # At its end the entry is gone, and the request waits for the lookup and sees it fail.
    hub.clock.set(cached_at + CACHE_FOR)
    with pytest.raises(Unavailable):
        await resolve.execute(token)


async def test_background_lookups_resume_once_the_database_is_back(hub):
    from chat4all.adapters.caching import FIRST_REFRESH_BACKOFF

    resolve, database = refreshing_resolver(hub)
    alice, token = await alice_cached_by(hub, resolve)
    database.down = True
    hub.clock.advance(DUE)
    assert await resolve.execute(token) == alice
    await settle()
    assert database.lookups == 2  # tried in the background, and failed
    assert await resolve.execute(token) == alice  # the back-off starts now
    backed_off_at = hub.clock.now()
    database.down = False

    hub.clock.set(backed_off_at + FIRST_REFRESH_BACKOFF - timedelta(microseconds=1))
    assert await resolve.execute(token) == alice
    await settle()
    assert database.lookups == 2  # not during the back-off
    hub.clock.set(backed_off_at + FIRST_REFRESH_BACKOFF)
    assert await resolve.execute(token) == alice
    await settle()
    assert database.lookups == 3

    # That lookup renewed the entry for CACHE_FOR: prove it by taking the database away again.
    refreshed_at = hub.clock.now()
    database.down = True
    hub.clock.set(refreshed_at + CACHE_FOR - timedelta(microseconds=1))
    assert await resolve.execute(token) == alice
    hub.clock.set(refreshed_at + CACHE_FOR)
    with pytest.raises(Unavailable):
        await resolve.execute(token)


async def test_stopping_the_process_cancels_a_background_lookup_before_the_adapters_close(hub):
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.settings import load_settings
    from tests.fakes import InMemoryOutboxReader, PlainTestHasher

    database = Database(hub)
    held_at_close: list[int] = []

    async def close_database() -> None:
        held_at_close.append(database.held)

    process = build(
        "embedded",
        load_settings({}),
        uow=database.uow,
        storage=hub.storage,
        publisher=hub.publisher,
        outbox_reader=InMemoryOutboxReader(hub.store),
        connectors=hub.connectors,
        hasher=PlainTestHasher(),
        clock=hub.clock,
    )
    process.adapters.on_stop.append(close_database)
    await process.register_user.execute("alice", PASSWORD)
    token = (await process.authenticate.execute("alice", PASSWORD)).access_token
    await process.resolve_token.execute(token)
    database.open.clear()
    hub.clock.advance(process.settings.token_cache * 0.8)
    await process.resolve_token.execute(token)  # starts the background lookup, held
    await settle()
    assert database.held == 1

    await asyncio.wait_for(process.stop(), 1)

    assert held_at_close == [0]


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
