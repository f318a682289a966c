"""Login throttling over HTTP, on both profiles.

The test deployments use a 3-second window, the default 5 failures per (username, address) and 100
per username, and 8 failures per client address (tests/integration/http/profiles.py: LOGIN_THROTTLE).
"""

from __future__ import annotations

import asyncio
import uuid

from tests.integration.http.profiles import PASSWORD
from tests.integration.http.test_auth_http import assert_error

PER_USER_AND_ADDRESS = 5
PER_ADDRESS = 8
WINDOW_SECONDS = 3


async def login(client, username: str, password: str, **headers):
    return await client.post("/auth/token", json={"username": username, "password": password}, headers=headers)


def throttled(response) -> int:
    """Asserts a 429 with error_code and Retry-After; returns the seconds to wait."""
    body = assert_error(response, 429, "too_many_attempts")
    assert "try again later" in body["detail"]
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_SECONDS
    assert response.headers["x-content-type-options"] == "nosniff"
    return retry_after


async def test_failed_logins_are_throttled_per_user_and_address_and_per_address_until_the_window_frees(deployment, client):
    _, username = await deployment.add_user()
    _, bystander = await deployment.add_user()

    # Per (username, address): five wrong passwords get 401, the sixth attempt 429, even with the right password.
    async with deployment.client_from("127.0.0.10") as other:
        for _ in range(PER_USER_AND_ADDRESS):
            assert_error(await login(other, username, "wrong-password"), 401, "invalid_credentials")
        throttled(await login(other, username, "wrong-password"))
        throttled(await login(other, username, PASSWORD))

    # Per address: eight failures for any usernames, known or not, then even a correct login from there waits.
    async with deployment.client_from("127.0.0.11") as other:
        for _ in range(PER_ADDRESS):
            assert_error(await login(other, f"ghost_{uuid.uuid4().hex[:8]}", "wrong-password"), 401)
        throttled(await login(other, bystander, PASSWORD))
    async with deployment.client_from("127.0.0.12") as other:
        assert (await login(other, bystander, PASSWORD)).status_code == 200

    # X-Forwarded-For is not trusted unless CHAT4ALL_TRUSTED_PROXIES says so (uvicorn would trust it from
    # 127.0.0.1 by default): spoofing a new address per attempt gets nowhere. (Earlier tests may have left
    # a failure or two from 127.0.0.1, so the 429 may come a little early, never late.)
    answers = []
    for number in range(PER_ADDRESS + 1):
        spoofed = {"X-Forwarded-For": f"203.0.113.{number + 1}"}
        answers.append(await login(client, f"ghost_{uuid.uuid4().hex[:8]}", "wrong-password", **spoofed))
        if answers[-1].status_code == 429:
            break
    assert {answer.status_code for answer in answers[:-1]} <= {401}
    throttled(answers[-1])

    # A whole window after the last failure every counter has emptied.
    await asyncio.sleep(WINDOW_SECONDS)
    async with deployment.client_from("127.0.0.10") as other:
        assert (await login(other, username, PASSWORD)).status_code == 200
    async with deployment.client_from("127.0.0.11") as other:
        assert (await login(other, bystander, PASSWORD)).status_code == 200
    assert (await login(client, bystander, PASSWORD)).status_code == 200


async def test_an_address_failing_for_a_user_does_not_lock_that_user_out_from_elsewhere(deployment):
    _, username = await deployment.add_user()
    async with deployment.client_from("127.0.0.20") as attacker, deployment.client_from("127.0.0.21") as own:
        for _ in range(PER_USER_AND_ADDRESS):
            assert_error(await login(attacker, username, "wrong-password"), 401, "invalid_credentials")
        throttled(await login(attacker, username, "wrong-password"))
        assert (await login(own, username, PASSWORD)).status_code == 200
        # The user's own login frees nothing for the address that failed.
        throttled(await login(attacker, username, PASSWORD))
        throttled(await login(attacker, username, "wrong-password"))
