"""Bearer tokens: random, stored as digests, valid until their declared expiry, revocable at once."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest

from chat4all.adapters.security import TOKEN_BYTES, OpaqueTokenIssuer
from chat4all.domain.errors import NotAuthenticated
from tests.unit.token_cache_fixtures import PASSWORD


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
