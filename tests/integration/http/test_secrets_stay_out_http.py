"""Nothing secret or internal leaves the API, on both profiles: no password or token in any log line,
no internal detail in the API document."""

from __future__ import annotations

import logging
import re
import uuid

import pytest

from tests.integration.http.hostile import CHECKOUT


async def test_no_password_or_token_reaches_any_log_line(deployment, client, caplog):
    """Every logger at DEBUG (SQL statements included) while a user logs in, fails to log in, uses
    the token on good and bad requests and logs out; neither secret may appear anywhere."""
    caplog.set_level(logging.DEBUG)
    password = "Secret-Pass-" + uuid.uuid4().hex
    wrong = "Wrong-Pass-" + uuid.uuid4().hex
    username = "logcheck_" + uuid.uuid4().hex[:8]
    await deployment.hub.register_user.execute(username, password)
    assert (await client.post("/auth/token", json={"username": username, "password": wrong})).status_code == 401
    login = await client.post("/auth/token", json={"username": username, "password": password})
    token = login.json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    await client.get("/v1/users/me", headers=auth)
    await client.get(f"/v1/messages/{uuid.uuid4()}", headers=auth)
    await client.post("/v1/messages", json={"bad": True}, headers=auth)
    await client.post("/auth/logout", headers=auth)
    await client.get("/v1/users/me", headers=auth)  # revoked now
    logged = caplog.text + "".join(log.read_text(errors="replace") for log in deployment.logs)
    assert "/auth/token" in caplog.text  # the capture did see the traffic
    if deployment.profile == "embedded":
        assert "SELECT" in caplog.text  # ... down to the SQL statements, parameters included
    for secret in (password, wrong, token):
        assert secret not in logged
    for response in (login,):
        assert password not in response.text


@pytest.mark.parametrize("path", ["/docs/openapi.json"])
async def test_the_api_document_names_no_internal_detail(client, path):
    text = (await client.get(path)).text
    assert not re.search(r"site-packages|Traceback|postgresql\+|sqlite\+", text) and CHECKOUT not in text
