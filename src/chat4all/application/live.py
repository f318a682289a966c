"""Live connections: who may hold one, how many, and for how long.

A user holds at most `per_user` live connections (Server-Sent Events streams and WebSockets) in
a process, and a process at most `per_process`; past either, a new one is refused (the first
with `too_many_connections`, the second with `server_busy`), and the ones already open are kept.

A connection lives as long as the token it was opened with: it ends at the token's expiry, and
within `token_check` seconds of the token being revoked, through whichever API process.

Every `token_check` seconds one sweep checks all open connections at once: their tokens in the
database, and where their users' logs end (a feed behind its log, whose wake-up was lost, is
nudged), a few hundred per query, rather than a timer and a query per connection: an idle
connection costs no wake-up and no query of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.application.auth import ResolveToken
from chat4all.application.events import ReadEvents
from chat4all.application.live_feed import Ended, FeedLimits, LiveFeed
from chat4all.application.ports import Clock, EventLogHeads, EventNotifier, LiveNotices
from chat4all.domain.errors import Throttled, Unavailable

log = logging.getLogger(__name__)

TOKENS_PER_CHECK = 500
RESTARTING = Ended("server_restarting", "this server is stopping; reconnect (another one may answer) and resume")
TOKEN_ENDED = Ended("invalid_token", "the access token expired or was revoked; log in again and reconnect")


class TooManyConnections(Throttled):
    code = "too_many_connections"


class ServerBusy(Unavailable):
    code = "server_busy"


@attrs.frozen
class LiveLimits:
    per_user: int = 10
    per_process: int = 800
    token_check: float = 5.0  # seconds between checks that each connection's token is still valid
    feed: FeedLimits = FeedLimits()


@attrs.frozen
class LiveSession:
    """An open live connection: its user, and the feed the transport sends from."""

    user_id: UUID
    feed: LiveFeed
    expires_at: datetime


@attrs.define
class LiveEvents:
    events: ReadEvents
    notifier: EventNotifier
    notices: LiveNotices
    tokens: ResolveToken
    clock: Clock
    limits: LiveLimits = LiveLimits()
    heads: EventLogHeads | None = None  # None: no catch-up check (feeds rely on wake-ups and their recheck)
    _by_user: dict[UUID, set[LiveFeed]] = attrs.field(init=False, factory=lambda: defaultdict(set))
    _open: int = attrs.field(init=False, default=0)
    _by_token: dict[str, set[LiveFeed]] = attrs.field(init=False, factory=lambda: defaultdict(set))
    _sweep: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _ending: bool = attrs.field(init=False, default=False)

    @property
    def open_connections(self) -> int:
        return self._open

    def check_room(self, user_id: UUID) -> None:
        """Raises what `connect` would, without taking a place (so an HTTP stream can be refused
        with a status code before its response starts)."""
        if self._ending:
            raise ServerBusy(RESTARTING.detail, retry_after_seconds=1)
        if self.open_connections >= self.limits.per_process:
            raise ServerBusy(
                f"this server holds its maximum of {self.limits.per_process} live connections; retry shortly",
                retry_after_seconds=5,
            )
        if len(self._by_user.get(user_id, ())) >= self.limits.per_user:
            raise TooManyConnections(
                f"at most {self.limits.per_user} live connections per user; close one first", retry_after_seconds=5
            )

    @contextlib.asynccontextmanager
    async def connect(self, secret: str) -> AsyncIterator[LiveSession]:
        """A live connection for the token's user, held until the context ends. Raises
        NotAuthenticated, TooManyConnections or ServerBusy."""
        user = await self.tokens.execute(secret)
        expires_at = await self.tokens.expiry(secret)
        self.check_room(user.id)
        feed = LiveFeed(user.id, self.events, self.notifier, self.limits.feed)
        self._by_user[user.id].add(feed)
        self._by_token[secret].add(feed)
        self._open += 1
        expiry = asyncio.get_running_loop().call_later(self._seconds_until(expires_at), feed.end, TOKEN_ENDED)
        self._start_sweep()
        try:
            with self.notices.subscribe(user.id, feed.offer):
                yield LiveSession(user.id, feed, expires_at)
        finally:
            expiry.cancel()
            self._release(user.id, secret, feed)
            await feed.close()

    def _seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.clock.now()).total_seconds())

    def _release(self, user_id: UUID, secret: str, feed: LiveFeed) -> None:
        self._open -= 1
        mine = self._by_user[user_id]
        mine.discard(feed)
        if not mine:
            del self._by_user[user_id]
        feeds = self._by_token[secret]
        feeds.discard(feed)
        if not feeds:
            del self._by_token[secret]

    def _start_sweep(self) -> None:
        if self._sweep is None or self._sweep.done():
            self._sweep = asyncio.create_task(self._sweep_forever(), name="live-connections-check")

    async def _sweep_forever(self) -> None:
        while self._by_token:
            await asyncio.sleep(self.limits.token_check)
            await self.check_tokens()
            await self.catch_up()

    async def catch_up(self) -> None:
        """Nudges the feeds whose user's log has events past their cursor: a wake-up that was lost
        (a notification connection that dropped, a writer that did not notify) costs at most one
        check period. One query per TOKENS_PER_CHECK users, whatever the number of connections."""
        users = list(self._by_user)
        heads: dict[UUID, int] = {}
        for start in range(0, len(users) if self.heads is not None else 0, TOKENS_PER_CHECK):
            try:
                heads |= await self.heads.last_seqs(users[start : start + TOKENS_PER_CHECK])  # type: ignore[union-attr]
            except Exception:
                log.warning("could not check where the live connections' logs end", exc_info=True)
        for user_id, head in heads.items():
            for feed in self._by_user.get(user_id, ()):
                if feed.cursor is not None and head > feed.cursor:
                    feed.nudge()

    async def check_tokens(self) -> None:
        """Ends the connections whose token is no longer valid, asking the database about every
        open connection's token in a few queries (TOKENS_PER_CHECK at a time). A check that fails
        (the database is unreachable) ends nothing: the next one decides."""
        secrets = list(self._by_token)
        for start in range(0, len(secrets), TOKENS_PER_CHECK):
            try:
                ended = await self.tokens.invalid_among(secrets[start : start + TOKENS_PER_CHECK])
            except Exception:
                log.warning("could not check the tokens of live connections; keeping them until the next check", exc_info=True)
                continue
            for secret in ended:
                for feed in list(self._by_token.get(secret, ())):
                    feed.end(TOKEN_ENDED)

    def end_all(self) -> None:
        """The process is stopping: every live connection ends (`server_restarting`) and no new
        one opens, so the server is not left waiting for streams that would never end."""
        self._ending = True
        for feeds in list(self._by_token.values()):
            for feed in list(feeds):
                feed.end(RESTARTING)

    async def stop(self) -> None:
        sweep, self._sweep = self._sweep, None
        if sweep is not None:
            sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweep
