"""Background lookups of cached tokens while the database is away, once it is back, and when the
process stops."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta

import pytest

from chat4all.domain.errors import Unavailable
from tests.unit.token_cache_fixtures import (
    CACHE_FOR,
    DUE,
    PASSWORD,
    Database,
    alice_cached_by,
    refreshing_resolver,
    settle,
)


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
