"""Login throttling: failures per (username, address), per address and per username within a sliding window."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from chat4all.application.auth import Authenticate
from chat4all.application.login_throttle import LoginThrottle, address_key
from chat4all.domain.errors import NotAuthenticated, Throttled
from tests.fakes import PlainTestHasher

PASSWORD = "correct horse battery"
WRONG = "not the password"
WINDOW = timedelta(minutes=15)


class CountingHasher(PlainTestHasher):
    """Counts verifications and can make them slow, like argon2 in its thread pool."""

    def __init__(self, delay: float = 0.0) -> None:
        self.verifications = 0
        self.delay = delay

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().verify(password_hash, password)


def authenticate(hub, hasher=None, **limits) -> Authenticate:
    throttle = LoginThrottle(
        **{
            "max_failures_per_user_and_address": 5,
            "max_failures_per_address": 20,
            "max_failures_per_user": 100,
            "window": WINDOW,
            **limits,
        }
    )
    return Authenticate(hub.uow, hasher or PlainTestHasher(), hub.tokens, hub.clock, hub.token_lifetime, throttle)


async def fail(login: Authenticate, username: str, times: int, address: str | None = "198.51.100.7") -> None:
    for _ in range(times):
        with pytest.raises(NotAuthenticated):
            await login.execute(username, WRONG, address)


async def throttled(login: Authenticate, username: str, password: str = WRONG, address: str | None = "198.51.100.7") -> Throttled:
    with pytest.raises(Throttled) as raised:
        await login.execute(username, password, address)
    return raised.value


async def test_the_sixth_failure_from_one_address_is_throttled_with_the_time_until_a_slot_frees(hub):
    await hub.user("alice")
    login = authenticate(hub)
    for _ in range(5):
        await fail(login, "alice", 1)
        hub.clock.advance(timedelta(minutes=1))
    error = await throttled(login, "alice")
    # The first failure was 5 minutes ago; it leaves the 15-minute window in 10.
    assert error.retry_after_seconds == 600
    assert error.code == "too_many_attempts" and "try again later" in error.detail


async def test_failures_from_one_address_do_not_lock_the_user_out_from_another(hub):
    alice = await hub.user("alice")
    login = authenticate(hub)
    await fail(login, "alice", 5, address="203.0.113.66")  # someone else guessing, or trying to lock alice out
    issued = await login.execute("alice", PASSWORD, "198.51.100.7")
    assert await hub.resolve_token.execute(issued.access_token) == alice
    # The guessing address stays throttled for alice, whatever it sends; her own login did not free it.
    await throttled(login, "alice", address="203.0.113.66")
    await throttled(login, "alice", PASSWORD, address="203.0.113.66")


async def test_a_throttled_caller_learns_nothing_about_the_password(hub):
    await hub.user("alice")
    hasher = CountingHasher()
    login = authenticate(hub, hasher)
    await fail(login, "alice", 5)
    verified = hasher.verifications
    right = await throttled(login, "alice", PASSWORD)
    wrong = await throttled(login, "alice", WRONG)
    assert (right.code, right.detail, right.retry_after_seconds) == (wrong.code, wrong.detail, wrong.retry_after_seconds)
    assert hasher.verifications == verified  # the password was not even looked at
    assert hub.store.tokens == {}


async def test_unknown_usernames_are_counted_and_answered_alike(hub):
    await hub.user("alice")
    hasher = CountingHasher()
    login = authenticate(hub, hasher)
    await fail(login, "ghost", 5)
    await fail(login, "alice", 5, address="203.0.113.9")
    assert hasher.verifications == 10  # an unknown user costs a verification too (against a decoy hash)
    ghost = await throttled(login, "ghost")
    alice = await throttled(login, "alice", address="203.0.113.9")
    assert (ghost.code, ghost.detail) == (alice.code, alice.detail)


async def test_the_window_slides_and_a_correct_login_then_works(hub):
    alice = await hub.user("alice")
    login = authenticate(hub)
    await fail(login, "alice", 5)
    error = await throttled(login, "alice", PASSWORD)
    assert error.retry_after_seconds == WINDOW.total_seconds()
    hub.clock.advance(WINDOW - timedelta(seconds=1))
    await throttled(login, "alice", PASSWORD)
    hub.clock.advance(timedelta(seconds=1))
    issued = await login.execute("alice", PASSWORD, "198.51.100.7")
    assert await hub.resolve_token.execute(issued.access_token) == alice


async def test_success_clears_the_count_of_its_own_address(hub):
    await hub.user("alice")
    login = authenticate(hub)
    await fail(login, "alice", 4)
    await login.execute("alice", PASSWORD, "198.51.100.7")
    await fail(login, "alice", 5)
    await throttled(login, "alice")


async def test_guessing_spread_over_many_addresses_meets_the_per_username_ceiling(hub):
    await hub.user("alice")
    login = authenticate(hub, max_failures_per_user=12)
    for address in ("203.0.113.1", "203.0.113.2"):
        await fail(login, "alice", 5, address=address)
    await login.execute("alice", PASSWORD, "198.51.100.7")  # alice herself: clears nothing the others did
    await fail(login, "alice", 2, address="203.0.113.3")
    error = await throttled(login, "alice", PASSWORD, address="203.0.113.4")
    assert error.retry_after_seconds == WINDOW.total_seconds()
    await fail(login, "ghost", 1, address="203.0.113.4")  # other names are not affected


async def test_failures_per_address_span_usernames(hub):
    await hub.user("alice")
    login = authenticate(hub)
    for number in range(20):
        await fail(login, f"guess{number}", 1)
    error = await throttled(login, "alice", PASSWORD)
    assert 1 <= error.retry_after_seconds <= WINDOW.total_seconds()
    # Another address is not affected, nor is a login without a known address.
    await login.execute("alice", PASSWORD, "198.51.100.8")
    await login.execute("alice", PASSWORD, None)


async def test_successful_logins_do_not_count_against_any_limit(hub):
    await hub.user("alice")
    login = authenticate(hub, max_failures_per_user_and_address=3, max_failures_per_address=3, max_failures_per_user=3)
    for _ in range(10):
        await login.execute("alice", PASSWORD, "198.51.100.7")
    assert hub.store.login_failures == []


async def test_the_longer_wait_wins_when_several_limits_are_reached(hub):
    login = authenticate(hub, max_failures_per_user_and_address=2, max_failures_per_address=2, max_failures_per_user=2)
    await fail(login, "mallory", 1)
    hub.clock.advance(timedelta(minutes=10))
    await fail(login, "mallory", 1, address="198.51.100.9")
    await fail(login, "someone", 1, address="198.51.100.9")
    # user: oldest failure 10 min ago -> 5 min left; address: oldest just now -> 15 min left
    assert (await throttled(login, "mallory", address="198.51.100.9")).retry_after_seconds == 900
    assert (await throttled(login, "mallory", address="198.51.100.10")).retry_after_seconds == 300


async def test_parallel_guesses_cannot_slip_past_the_limit(hub):
    await hub.user("alice")
    hasher = CountingHasher(delay=0.01)
    login = authenticate(hub, hasher)
    outcomes = await asyncio.gather(*(login.execute("alice", WRONG, "198.51.100.7") for _ in range(30)), return_exceptions=True)
    kinds = [type(outcome).__name__ for outcome in outcomes]
    assert kinds.count("NotAuthenticated") == 5 and kinds.count("Throttled") == 25
    assert hasher.verifications == 5


async def test_parallel_guesses_from_many_addresses_cannot_slip_past_the_ceiling(hub):
    await hub.user("alice")
    hasher = CountingHasher(delay=0.01)
    login = authenticate(hub, hasher, max_failures_per_user=7)
    attempts = (login.execute("alice", WRONG, f"203.0.113.{number % 10}") for number in range(40))
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    kinds = [type(outcome).__name__ for outcome in outcomes]
    assert kinds.count("NotAuthenticated") == 7 and kinds.count("Throttled") == 33


@pytest.mark.parametrize(
    "first, second, same",
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", True),  # one /64
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:192.0.2.1", "192.0.2.1", True),  # IPv4-mapped
        ("192.0.2.1", "192.0.2.2", False),
        ("fe80::1%eth0", "fe80::2", True),
        ("testclient", "testclient", True),  # not an IP: used as given
    ],
)
def test_address_keys(first, second, same):
    assert (address_key(first) == address_key(second)) is same


async def test_stale_failures_are_purged(hub):
    login = authenticate(hub)
    await fail(login, "ghost", 3)
    hub.clock.advance(WINDOW)
    await fail(login, "ghost", 1)
    hub.clock.advance(timedelta(seconds=1))
    assert await login.forget_stale_failures() == 9  # 3 attempts x (pair, address, user)
    assert len(hub.store.login_failures) == 3
    assert await login.forget_stale_failures() == 0


async def test_the_default_policy_is_5_per_user_and_address_20_per_address_100_per_user_in_15_minutes():
    assert LoginThrottle() == LoginThrottle(
        max_failures_per_user_and_address=5, max_failures_per_address=20, max_failures_per_user=100, window=timedelta(minutes=15)
    )


def test_the_limits_come_from_settings():
    from chat4all.entrypoints.bootstrap import login_throttle
    from chat4all.entrypoints.settings import SettingsError, load_settings

    settings = load_settings(
        {
            "CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER_AND_ADDRESS": "3",
            "CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER": "40",
            "CHAT4ALL_LOGIN_MAX_FAILURES_PER_ADDRESS": "50",
            "CHAT4ALL_LOGIN_WINDOW_SECONDS": "60",
            "CHAT4ALL_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2",
        }
    )
    assert login_throttle(settings) == LoginThrottle(
        max_failures_per_user_and_address=3, max_failures_per_address=50, max_failures_per_user=40, window=timedelta(seconds=60)
    )
    assert settings.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    defaults = load_settings({})
    assert login_throttle(defaults) == LoginThrottle() and defaults.trusted_proxies == ()
    for name, value in (
        ("CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER", "0"),
        ("CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER_AND_ADDRESS", "-1"),
        ("CHAT4ALL_LOGIN_WINDOW_SECONDS", "soon"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})
    # A username ceiling below the per-address limit would lock users out from everywhere again.
    with pytest.raises(SettingsError, match="CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER .*CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER_AND_ADDRESS"):
        load_settings({"CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER": "4"})
