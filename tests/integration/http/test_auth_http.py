"""Login, tokens, users, health: the same contract on both profiles."""

from __future__ import annotations

import uuid

from tests.integration.http.profiles import METRICS_TOKEN, PASSWORD


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["error_code"], str) and body["error_code"]
    if code:
        assert body["error_code"] == code, body
    return body


async def test_login_returns_a_bearer_token_that_identifies_the_user(deployment, client):
    user_id, username = await deployment.add_user()
    response = await client.post("/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 43  # 256 bits, base64url
    me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["user_id"] == user_id and me.json()["username"] == username


async def test_wrong_password_and_unknown_user_get_the_same_401(deployment, client):
    _, username = await deployment.add_user()
    wrong = await client.post("/auth/token", json={"username": username, "password": "not-the-password"})
    unknown = await client.post("/auth/token", json={"username": "nobody_" + uuid.uuid4().hex[:8], "password": PASSWORD})
    assert assert_error(wrong, 401) == assert_error(unknown, 401)


async def test_malformed_login_body_is_a_400_with_field_errors(client):
    body = assert_error(await client.post("/auth/token", json={"username": "x"}), 400, "invalid_input")
    assert "password" in body["detail"]
    assert_error(await client.post("/auth/token", content=b"{not json", headers={"Content-Type": "application/json"}), 400)


async def test_requests_without_a_valid_token_get_401_with_a_bearer_challenge(client):
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = await client.get("/v1/users/me", headers=headers)
        assert_error(response, 401)
        assert response.headers["www-authenticate"].lower().startswith("bearer")


async def test_logout_revokes_the_token_at_once(deployment, client):
    _, headers = await deployment.user()
    assert (await client.post("/auth/logout", headers=headers)).status_code == 204
    assert_error(await client.get("/v1/users/me", headers=headers), 401)


async def test_users_can_be_found_by_username(deployment, client):
    _, headers = await deployment.user()
    other_id, other_name = await deployment.add_user()
    response = await client.get("/v1/users", params={"username": other_name}, headers=headers)
    assert response.status_code == 200
    assert [user["user_id"] for user in response.json()["users"]] == [other_id]
    missing = await client.get("/v1/users", params={"username": "ghost_" + uuid.uuid4().hex[:6]}, headers=headers)
    assert missing.json()["users"] == []


async def test_health_ready_and_docs(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and set(ready.json()["checks"].values()) == {"ok"}
    schema = (await client.get("/docs/openapi.json")).json()
    assert "/v1/messages" in schema["paths"] and "/v1/files/upload" in schema["paths"]
    assert (await client.get("/docs/")).status_code == 200


async def test_responses_carry_security_headers(client):
    response = await client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_metrics_in_prometheus_text_format(deployment, client):
    from tests.integration.http.helpers import conversation, text_message, wait_for_status

    alice, headers = await deployment.user()
    bob, _ = await deployment.add_user()
    body = text_message(await conversation(deployment, headers, [alice, bob]), alice)
    await client.post("/v1/messages", json=body, headers=headers)
    await wait_for_status(client, headers, body["message_id"])
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in response.text.splitlines() if line and not line.startswith("#")}
    assert samples["chat4all_messages_accepted_total"] >= 1
    assert "chat4all_outbox_backlog" in samples
    if deployment.profile == "embedded":  # in the distributed profile deliveries are counted by the workers
        assert samples['chat4all_channel_deliveries_total{channel="whatsapp",outcome="delivered"}'] >= 1
        assert samples['chat4all_accept_to_final_seconds_count{status="delivered"}'] >= 1
