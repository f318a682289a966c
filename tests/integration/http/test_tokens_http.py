"""Bearer tokens over HTTP, on both profiles: every way of not having a valid one is a 401 with a
Bearer challenge, and no other answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from chat4all.adapters.security import OpaqueTokenIssuer
from chat4all.domain.users import AccessToken
from tests.integration.http.test_auth_http import assert_error

PROTECTED = [
    ("GET", "/v1/users/me"),
    ("GET", "/v1/conversations"),
    ("POST", "/auth/logout"),
    ("GET", "/v1/files/00000000-0000-4000-8000-000000000001"),
]


def challenged(response, code: str) -> None:
    assert_error(response, 401, code)
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert response.headers["x-content-type-options"] == "nosniff"  # error answers carry the security headers too


@pytest.mark.parametrize(
    "authorization, code",
    [
        (None, "missing_token"),
        ("", "missing_token"),
        ("Bearer", "missing_token"),
        ("Basic dXNlcjpwYXNz", "missing_token"),
        ("Token abc", "missing_token"),
        ("Bearer " + "x" * 513, "missing_token"),  # longer than any token: not even looked up
        ("Bearer not-a-token", "invalid_token"),
        ("Bearer " + "A" * 43, "invalid_token"),
    ],
    ids=["absent", "empty", "scheme-only", "basic", "other-scheme", "too-long", "unknown", "unknown-43"],
)
async def test_missing_or_malformed_tokens_are_401(client, authorization, code):
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in PROTECTED:
        challenged(await client.request(method, path, headers=headers), code)


async def test_the_scheme_is_case_insensitive(deployment, client):
    _, headers = await deployment.user()
    token = headers["Authorization"].split(" ", 1)[1]
    assert (await client.get("/v1/users/me", headers={"Authorization": f"bearer {token}"})).status_code == 200


async def test_a_revoked_token_is_401_on_every_endpoint_at_once(deployment, client):
    _, headers = await deployment.user()
    _, other = await deployment.user()
    assert (await client.post("/auth/logout", headers=headers)).status_code == 204
    for method, path in PROTECTED:
        challenged(await client.request(method, path, headers=headers), "invalid_token")
    assert (await client.get("/v1/users/me", headers=other)).status_code == 200  # only that token


async def test_an_expired_token_is_401(deployment, client):
    """A token whose expiry has passed, written straight into the deployment's database."""
    user_id, _ = await deployment.add_user()
    issuer = OpaqueTokenIssuer()
    secret = issuer.new_secret()
    now = datetime.now(UTC)
    async with deployment.hub.adapters.uow() as uow:
        await uow.tokens.add(AccessToken(issuer.digest(secret), UUID(user_id), now - timedelta(hours=2), now - timedelta(seconds=1)))
        await uow.commit()
    challenged(await client.get("/v1/users/me", headers={"Authorization": f"Bearer {secret}"}), "invalid_token")
    # and a token of that same user that is still valid works
    async with deployment.hub.adapters.uow() as uow:
        fresh = issuer.new_secret()
        await uow.tokens.add(AccessToken(issuer.digest(fresh), UUID(user_id), now, now + timedelta(minutes=5)))
        await uow.commit()
    assert (await client.get("/v1/users/me", headers={"Authorization": f"Bearer {fresh}"})).json()["user_id"] == user_id
