"""Who may hold a live connection, how many, and until when: per user and per process limits, the
end of a connection at its token's expiry or after a revocation, typing notices handed to it."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest

from chat4all.adapters.live_notices import InProcessLiveNotices
from chat4all.application.events import ReadEvents
from chat4all.application.live import LiveEvents, LiveLimits, ServerBusy, TooManyConnections
from chat4all.application.live_feed import Ended
from chat4all.domain.errors import NotAuthenticated
from chat4all.domain.events import EphemeralEvent, EventType
from tests.fakes import InMemoryEventNotifier

SOON = 2.0


def live_events(hub, **limits) -> LiveEvents:
    events = ReadEvents(hub.uow.reader, InMemoryEventNotifier())
    return LiveEvents(events, events.notifier, InProcessLiveNotices(), hub.resolve_token, hub.clock, LiveLimits(**limits))


async def token_of(hub, name: str) -> str:
    await hub.user(name)
    return (await hub.authenticate.execute(name, hub.password)).access_token


async def test_a_user_holds_at_most_per_user_connections_and_a_process_per_process(hub):
    live = live_events(hub, per_user=2, per_process=3)
    alice, bob, carol = [await token_of(hub, name) for name in ("alice", "bob", "carol")]
    async with AsyncExitStack() as held:
        await held.enter_async_context(live.connect(alice))
        await held.enter_async_context(live.connect(alice))
        with pytest.raises(TooManyConnections):
            await held.enter_async_context(live.connect(alice))
        await held.enter_async_context(live.connect(bob))
        with pytest.raises(ServerBusy):
            await held.enter_async_context(live.connect(carol))
        assert live.open_connections == 3
    assert live.open_connections == 0
    async with live.connect(alice), live.connect(alice):  # places are given back
        pass


async def test_an_invalid_token_opens_nothing(hub):
    live = live_events(hub)
    with pytest.raises(NotAuthenticated):
        async with live.connect("not-a-token"):
            pass
    assert live.open_connections == 0


async def test_a_revoked_token_ends_its_connections_at_the_next_check_and_no_others(hub):
    live = live_events(hub)
    alice, bob = await token_of(hub, "alice"), await token_of(hub, "bob")
    async with live.connect(alice) as first, live.connect(alice) as second, live.connect(bob) as other:
        await hub.logout.execute(alice)
        await live.check_tokens()
        for session in (first, second):
            ended = await asyncio.wait_for(session.feed.next(), SOON)
            assert isinstance(ended, Ended) and ended.code == "invalid_token"
        assert await other.feed.next(timeout=0.1) is None
    await live.stop()


async def test_a_connection_ends_when_its_token_expires(hub):
    live = live_events(hub)
    alice = await token_of(hub, "alice")
    hub.clock.advance(hub.token_lifetime - timedelta(seconds=0.3))
    async with live.connect(alice) as session:
        assert await session.feed.next(timeout=0.1) is None
        ended = await asyncio.wait_for(session.feed.next(), SOON)  # about 0.2 s later, by the event loop's clock
        assert isinstance(ended, Ended) and ended.code == "invalid_token"
    await live.stop()


async def test_the_periodic_check_runs_while_connections_are_open(hub):
    live = live_events(hub, token_check=0.1)
    alice = await token_of(hub, "alice")
    async with live.connect(alice) as session:
        await hub.logout.execute(alice)
        ended = await asyncio.wait_for(session.feed.next(), SOON)
        assert isinstance(ended, Ended)
    await live.stop()


async def test_typing_notices_published_to_a_user_reach_their_open_connections(hub):
    live = live_events(hub)
    alice = await token_of(hub, "alice")
    notice = EphemeralEvent(EventType.TYPING, hub.clock.now(), {"conversation_id": "c"})
    async with live.connect(alice) as session:
        await live.notices.publish([session.user_id], notice)
        assert await asyncio.wait_for(session.feed.next(), SOON) == notice
    await live.notices.publish([session.user_id], notice)  # nobody listens any more: dropped
    await live.stop()


async def test_a_logout_through_another_process_is_seen_at_the_next_check_whatever_the_token_cache(hub):
    from chat4all.adapters.caching import ExpiringCache
    from chat4all.application.auth import TOKEN_CACHE_SIZE, ResolveToken

    # This process trusts tokens it looked up for a minute; the logout goes through another one.
    caching = ResolveToken(hub.uow, hub.tokens, hub.clock, timedelta(minutes=1), ExpiringCache(TOKEN_CACHE_SIZE))
    events = ReadEvents(hub.uow.reader, InMemoryEventNotifier())
    live = LiveEvents(events, events.notifier, InProcessLiveNotices(), caching, hub.clock, LiveLimits())
    alice, bob = await token_of(hub, "alice"), await token_of(hub, "bob")
    async with live.connect(alice) as revoked, live.connect(bob) as kept:
        await hub.logout.execute(alice)
        opened = len(hub.uow.opened)
        await live.check_tokens()
        assert len(hub.uow.opened) == opened + 1  # one query for every open connection's token
        assert isinstance(await asyncio.wait_for(revoked.feed.next(), SOON), Ended)
        assert await kept.feed.next(timeout=0.1) is None
    with pytest.raises(NotAuthenticated):
        await caching.execute(alice)  # and its cache entry is gone: requests with it are refused too
    await live.stop()


async def test_a_feed_whose_wake_up_was_lost_is_nudged_at_the_next_check(hub):
    from chat4all.domain.events import PendingEvent
    from tests.fakes.live import InMemoryEventLogHeads

    heads = InMemoryEventLogHeads(hub.store)
    events = ReadEvents(hub.uow.reader, InMemoryEventNotifier())
    live = LiveEvents(events, events.notifier, InProcessLiveNotices(), hub.resolve_token, hub.clock, LiveLimits(), heads)
    tokens = [await token_of(hub, name) for name in ("alice", "bob", "carol")]
    async with live.connect(tokens[0]) as alice, live.connect(tokens[1]), live.connect(tokens[2]):
        alice.feed.resume(0)
        await asyncio.sleep(0.05)  # the feed has read its (empty) log and waits
        async with hub.uow() as uow:  # committed by a writer that wakes nobody
            await uow.events.append([PendingEvent(alice.user_id, EventType.MESSAGE_CREATED, hub.clock.now(), {})])
            await uow.commit()
        assert await alice.feed.next(timeout=0.2) is None
        await live.catch_up()
        assert (await asyncio.wait_for(alice.feed.next(), SOON)).seq == 1
        assert heads.queries == 1  # one query for every open connection's user
    await live.stop()
