"""Properties of login throttling, over any sequence of attempts:

- every answer (token, 401, or 429 with its Retry-After) is what a simple model of the three
  counters predicts;
- failures from other addresses, for any usernames, never keep a user's correct password out from
  an address that has not failed, as long as they stay under the per-username ceiling.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from chat4all.application.auth import Authenticate
from chat4all.application.login_throttle import LoginThrottle
from chat4all.domain.errors import NotAuthenticated, Throttled
from tests.fakes import PlainTestHasher
from tests.unit.conftest import PASSWORD, build_hub

WINDOW = timedelta(minutes=15)
USERS = ("alice", "bob")  # registered; "ghost" is not
ADDRESSES = ("192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2")  # the two IPv6 ones share a /64


@dataclass(frozen=True)
class Attempt:
    username: str
    address: str
    correct: bool
    wait_seconds: int


attempts = st.builds(
    Attempt,
    username=st.sampled_from([*USERS, "ghost"]),
    address=st.sampled_from(ADDRESSES),
    correct=st.booleans(),
    wait_seconds=st.sampled_from([0, 0, 1, 60, 299, 900]),
)


@dataclass
class Model:
    """The three counters as the README describes them, kept by hand."""

    throttle: LoginThrottle
    failures: dict[tuple, list[datetime]] = field(default_factory=dict)

    def counters(self, attempt: Attempt) -> list[tuple[tuple, int]]:
        address = "2001:db8::/64" if ":" in attempt.address else attempt.address
        return [
            (("pair", attempt.username, address), self.throttle.max_failures_per_user_and_address),
            (("address", address), self.throttle.max_failures_per_address),
            (("user", attempt.username), self.throttle.max_failures_per_user),
        ]

    def answer(self, attempt: Attempt, now: datetime) -> str | int:
        """'token', 'invalid', or the Retry-After of a 429."""
        counted = {key: [at for at in self.failures.get(key, []) if at > now - WINDOW] for key, _ in self.counters(attempt)}
        full = [min(counted[key]) for key, limit in self.counters(attempt) if len(counted[key]) >= limit]
        if full:
            return max(max(1, math.ceil((oldest + WINDOW - now).total_seconds())) for oldest in full)
        if attempt.correct and attempt.username in USERS:
            self.failures[self.counters(attempt)[0][0]] = []
            return "token"
        for key, _ in self.counters(attempt):
            self.failures.setdefault(key, []).append(now)
        return "invalid"


async def answer_of(login: Authenticate, attempt: Attempt) -> str | int:
    try:
        await login.execute(attempt.username, PASSWORD if attempt.correct else "wrong password", attempt.address)
    except Throttled as error:
        return error.retry_after_seconds
    except NotAuthenticated:
        return "invalid"
    return "token"


async def play(sequence: list[Attempt], throttle: LoginThrottle) -> None:
    hub = build_hub()
    for username in USERS:
        await hub.user(username)
    login = Authenticate(hub.uow, PlainTestHasher(), hub.tokens, hub.clock, hub.token_lifetime, throttle)
    model = Model(throttle)
    for number, attempt in enumerate(sequence):
        hub.clock.advance(timedelta(seconds=attempt.wait_seconds))
        expected = model.answer(attempt, hub.clock.now())
        assert await answer_of(login, attempt) == expected, f"attempt {number}: {attempt}"


@settings(max_examples=150, deadline=None)
@given(
    sequence=st.lists(attempts, max_size=40),
    limits=st.tuples(st.integers(1, 4), st.integers(1, 8), st.integers(0, 10)),
)
def test_every_answer_is_what_the_model_of_the_three_counters_predicts(sequence, limits):
    per_pair, per_address, above_pair = limits
    throttle = LoginThrottle(
        max_failures_per_user_and_address=per_pair,
        max_failures_per_address=per_address,
        max_failures_per_user=per_pair + above_pair,
        window=WINDOW,
    )
    asyncio.run(play(sequence, throttle))


@settings(max_examples=100, deadline=None)
@given(
    failures=st.lists(st.tuples(st.sampled_from([*USERS, "ghost"]), st.sampled_from(ADDRESSES[:3])), max_size=60),
)
def test_other_addresses_failing_never_keep_the_right_password_out(failures):
    async def scene() -> None:
        hub = build_hub()
        alice = await hub.user("alice")
        login = Authenticate(hub.uow, PlainTestHasher(), hub.tokens, hub.clock, hub.token_lifetime, LoginThrottle())
        for username, address in failures:
            try:
                await login.execute(username, "wrong password", address)
            except (NotAuthenticated, Throttled):
                pass
        issued = await login.execute("alice", PASSWORD, "198.51.100.200")
        assert await hub.resolve_token.execute(issued.access_token) == alice

    asyncio.run(scene())
