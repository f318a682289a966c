"""Registering users, logging in and out, and resolving bearer tokens."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import attrs

from chat4all.application.errors import DuplicateKey
from chat4all.application.login_throttle import LoginThrottle
from chat4all.application.ports import Cache, Clock, IdGenerator, PasswordHasher, TokenIssuer, UnitOfWorkFactory
from chat4all.application.token_reads import TokenReads
from chat4all.domain.errors import Conflict, NotAuthenticated, NotFound, Throttled
from chat4all.domain.paging import MAX_PAGE, check_page
from chat4all.domain.users import AccessToken, User, is_valid_username, validate_new_password, validate_username


@attrs.frozen
class IssuedToken:
    access_token: str
    expires_in: int
    user_id: UUID


@attrs.define
class RegisterUser:
    uow: UnitOfWorkFactory
    hasher: PasswordHasher
    ids: IdGenerator
    clock: Clock

    async def execute(self, username: str, password: str) -> User:
        validate_username(username)
        validate_new_password(password)
        password_hash = await self.hasher.hash(password)
        async with self.uow() as uow:
            if await uow.users.get_by_username(username):
                raise Conflict(f"username {username!r} is taken", code="username_taken")
            user = User(self.ids.new_id(), username, password_hash, self.clock.now())
            try:
                await uow.users.add(user)
                await uow.commit()
            except DuplicateKey:  # a concurrent registration took the name first
                raise Conflict(f"username {username!r} is taken", code="username_taken") from None
        return user


@attrs.define
class Authenticate:
    """Trades a username and password for a bearer token.

    Unknown users and wrong passwords cost the same argon2 verification and get the
    same answer, so timing and wording reveal nothing about which usernames exist.

    Failed logins are throttled per (username, client address), per client address and per
    username (`LoginThrottle`). The throttle is checked before the password is looked at, so a
    throttled caller learns nothing about it; and every attempt is counted as a failure *before*
    verification (then withdrawn if it succeeds), so a burst of parallel guesses cannot slip past
    the limit while the slow hashes run. A successful login clears its (username, address) count;
    the failures other addresses made for the username stay counted.
    """

    uow: UnitOfWorkFactory
    hasher: PasswordHasher
    tokens: TokenIssuer
    clock: Clock
    token_lifetime: timedelta
    throttle: LoginThrottle = attrs.field(factory=LoginThrottle)
    _decoy_hash: str | None = None

    async def execute(self, username: str, password: str, client_address: str | None = None) -> IssuedToken:
        now = self.clock.now()
        limits = self.throttle.limits(username, client_address)
        user = await self._count_attempt(limits, username, now)
        if user is None:
            await self.hasher.verify(await self._decoy(), password)
            raise NotAuthenticated("invalid username or password", code="invalid_credentials")
        if not await self.hasher.verify(user.password_hash, password):
            raise NotAuthenticated("invalid username or password", code="invalid_credentials")
        secret = self.tokens.new_secret()
        token = AccessToken(self.tokens.digest(secret), user.id, now, now + self.token_lifetime)
        (pair, _), *others = limits
        async with self.uow() as uow:
            await uow.tokens.add(token)
            await uow.login_attempts.clear(pair)
            for key, _ in others:
                await uow.login_attempts.withdraw(key, now)
            await uow.commit()
        return IssuedToken(secret, int(self.token_lifetime.total_seconds()), user.id)

    async def _count_attempt(self, limits: list[tuple[str, int]], username: str, now: datetime) -> User | None:
        """Refuses the attempt if a counter is full, else counts it as a failure on every counter;
        returns the user the name belongs to, if any."""
        async with self.uow() as uow:
            waits = []
            for key, limit in limits:
                count, oldest = await uow.login_attempts.failures_since(key, now - self.throttle.window)
                if count >= limit:
                    waits.append(self._seconds_until_free(oldest, now))
            if waits:
                raise Throttled("too many failed logins; try again later", retry_after_seconds=max(waits))
            for key, _ in limits:
                await uow.login_attempts.record_failure(key, now)
            # A name that breaks the username rules cannot have been registered: no need to look it up.
            user = await uow.users.get_by_username(username) if is_valid_username(username) else None
            await uow.commit()
        return user

    async def forget_stale_failures(self) -> int:
        """Deletes failures too old to count any more (run periodically)."""
        async with self.uow() as uow:
            purged = await uow.login_attempts.purge_before(self.clock.now() - self.throttle.window)
            await uow.commit()
        return purged

    def _seconds_until_free(self, oldest: datetime | None, now: datetime) -> int:
        """Seconds until the oldest counted failure leaves the window (at least 1)."""
        if oldest is None:
            return math.ceil(self.throttle.window.total_seconds())
        return max(1, math.ceil((oldest + self.throttle.window - now).total_seconds()))

    async def _decoy(self) -> str:
        if self._decoy_hash is None:
            self._decoy_hash = await self.hasher.hash("decoy-password-for-unknown-users")
        return self._decoy_hash


# Who each recently seen token digest belongs to: one cache, shared by ResolveToken and Logout.
TOKEN_CACHE_SIZE = 10_000
# Cached tokens `ResolveToken.reconfirm_used` asks the database about in one query.
TOKENS_PER_RECONFIRM = 500
# How long after its last use a token is still reconfirmed: a client that sends every few seconds
# (longer than the cache time, shorter than this) then never waits for a lookup.
RECONFIRM_AFTER_USE = timedelta(seconds=60)


@attrs.define
class ResolveToken:
    """Finds the user a bearer token belongs to.

    With `cache_for` above zero, a valid token's user is remembered for that long (never past the
    token's expiry), so most requests cost no database query. The price: a token revoked through
    *another* API process, or whose user was deleted, keeps working here for up to `cache_for`.
    A logout through this process takes effect at once (`Logout` forgets the token here).

    Between half and four fifths of the way through `cache_for` (a random point per entry), the
    next request still gets the cached user at once and the token is looked up again in the
    background; a busy token therefore never misses. A lookup that finds the token no longer
    valid, or its user gone, forgets the entry, so a revocation seen by a background lookup takes
    effect from then on. One that fails for another reason (the database is unreachable) leaves
    the entry until its end, exactly as if there had been no background lookup, and the next one
    waits for a back-off that doubles with each failure (see `Cache.get_or_load`): during
    an outage a busy token costs a failing lookup every so often, not one per request.

    Run every `reconfirm_every`, `reconfirm_used` checks the tokens used in the last minute in
    bulk and extends their entries, so a token in steady use costs no lookup of its own however
    many clients there are (1,000 clients each sending every few seconds used to miss on nearly
    every request). The bound above does not move: an entry is only ever served within
    `cache_for` of the moment the database last said its token was valid.
    """

    uow: UnitOfWorkFactory
    tokens: TokenIssuer
    clock: Clock
    cache_for: timedelta
    cache: Cache[str, User]
    _last_used: dict[str, datetime] = attrs.field(factory=dict, init=False)  # by `reconfirm_used`'s clock
    _reads: TokenReads = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._reads = TokenReads(lambda: self.uow(), self.clock)  # the factory of the moment (tests swap it)

    async def execute(self, secret: str) -> User:
        digest = self.tokens.digest(secret)
        now = self.clock.now()
        return await self.cache.get_or_load(digest, now, lambda: self._look_up(digest))

    @property
    def reconfirm_every(self) -> timedelta:
        """Half `cache_for`: the check comes round well before a used entry ends or needs a refresh."""
        return self.cache_for / 2

    async def reconfirm_used(self) -> int:
        """Asks the database which of the cached tokens used in the last RECONFIRM_AFTER_USE are
        still valid, one query per TOKENS_PER_RECONFIRM of them: those are kept for another
        `cache_for` from the moment the question was asked (never past their expiry), the others
        forgotten at once. Returns how many were forgotten."""
        if self.cache_for <= timedelta(0):
            return 0
        checked_at = self.clock.now()
        self._last_used.update(dict.fromkeys(self.cache.take_used(), checked_at))
        for digest, used_at in list(self._last_used.items()):
            if used_at < checked_at - RECONFIRM_AFTER_USE:
                del self._last_used[digest]
        digests = sorted(self._last_used)
        forgotten = 0
        for start in range(0, len(digests), TOKENS_PER_RECONFIRM):
            forgotten += await self._reconfirm(digests[start : start + TOKENS_PER_RECONFIRM])
        return forgotten

    async def _reconfirm(self, digests: list[str]) -> int:
        async with self.uow() as uow:
            asked_at = self.clock.now()  # with the connection held (see `_look_up`)
            expiries = await uow.tokens.expiries_among(digests, asked_at)
        for digest in set(digests) - expiries.keys():
            self.cache.forget(digest)
            self._last_used.pop(digest, None)
        for digest, expires_at in expiries.items():
            # Past the next check's due time: a per-request refresh only if the checks stop.
            refresh_at = asked_at + self.cache_for * (0.75 + 0.15 * random.random())
            self.cache.prolong(digest, min(asked_at + self.cache_for, expires_at), refresh_at)
        return len(digests) - len(expiries)

    async def invalid_among(self, secrets: Sequence[str]) -> set[str]:
        """Those of `secrets` that are no longer valid (revoked, expired, unknown), asked of the
        database in one query, past the cache; their cache entries are dropped, so requests with
        them are refused from now on too."""
        digests = {self.tokens.digest(secret): secret for secret in secrets}
        async with self.uow() as uow:
            valid = await uow.tokens.valid_among(list(digests), self.clock.now())
        for digest in digests.keys() - valid:
            self.cache.forget(digest)
        return {secret for digest, secret in digests.items() if digest not in valid}

    async def expiry(self, secret: str) -> datetime:
        """When the token stops being valid (a live connection is closed then); always read from
        the database. Raises NotAuthenticated when it is not valid now."""
        async with self.uow() as uow:
            token = await uow.tokens.get(self.tokens.digest(secret))
        if token is None or not token.is_valid_at(self.clock.now()):
            raise NotAuthenticated("the access token is missing, invalid, expired or revoked", code="invalid_token")
        return token.expires_at

    async def _look_up(self, digest: str) -> User:
        # Lookups that miss together share one read (`TokenReads`). Its moment is taken once the read
        # holds its connection, not when the request came: an overloaded process may wait seconds
        # for one, and an entry counted from before that wait would end as soon as it is put (every
        # request then missed: the cache gave out just when it was needed most). The token is read
        # after this moment, so the bound still holds.
        read = await self._reads.read(digest)
        if read is None or not read.token.is_valid_at(read.read_at):
            self.cache.forget(digest)
            raise NotAuthenticated("the access token is missing, invalid, expired or revoked", code="invalid_token")
        if read.user is None:
            self.cache.forget(digest)
            raise NotAuthenticated("the access token's user no longer exists", code="invalid_token")
        if self.cache_for > timedelta(0):
            # A random refresh point per entry: tokens first seen together (every client of a
            # process after a restart, say) would otherwise all be looked up again at the same
            # moment, which is the burst of slow requests this refreshing is meant to avoid.
            refresh_at = read.read_at + self.cache_for * (0.5 + 0.3 * random.random())
            until = min(read.read_at + self.cache_for, read.token.expires_at)
            self.cache.put(digest, read.user, until=until, refresh_at=refresh_at)
        return read.user


@attrs.define
class Logout:
    uow: UnitOfWorkFactory
    tokens: TokenIssuer
    clock: Clock
    cache: Cache[str, User]  # the one ResolveToken reads

    async def execute(self, secret: str) -> None:
        digest = self.tokens.digest(secret)
        async with self.uow() as uow:
            await uow.tokens.revoke(digest, self.clock.now())
            await uow.commit()
        self.cache.forget(digest)


@attrs.define
class FindUsers:
    uow: UnitOfWorkFactory

    async def execute(self, *, username: str | None = None, limit: int = 50, offset: int = 0) -> list[User]:
        limit = min(limit, MAX_PAGE)  # asked for more, a caller gets one full page
        check_page(limit, offset)
        if username is not None and not is_valid_username(username):
            return []  # no user can have it
        async with self.uow() as uow:
            return await uow.users.list(username=username, limit=limit, offset=offset)

    async def get(self, user_id: UUID) -> User:
        async with self.uow() as uow:
            user = await uow.users.get(user_id)
        if user is None:
            raise NotFound("no such user", code="user_not_found")
        return user
