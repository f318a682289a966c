"""Origins and hosts, on both profiles: CORS is closed unless configured, error answers carry the
security headers, a host name not allowed is refused and links come from the public URL."""

from __future__ import annotations

import uuid
from urllib.parse import urlparse

import httpx

from tests.integration.http.hostile import JSON, MAX_JSON_BODY, refused
from tests.integration.http.profiles import FAST_ARGON2


async def test_cors_is_closed_by_default(client):
    origin = {"Origin": "https://evil.example"}
    response = await client.get("/health", headers=origin)
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/v1/messages", headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.headers["x-content-type-options"] == "nosniff"


async def test_cors_allows_exactly_the_configured_origins(tmp_path):
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.settings import load_settings
    from chat4all.entrypoints.web import web_app

    settings = load_settings({**FAST_ARGON2, "CHAT4ALL_DATA_DIR": str(tmp_path), "CHAT4ALL_CORS_ORIGINS": "https://app.example,https://admin.example"})
    hub = build("embedded", settings)
    try:
        transport = httpx.ASGITransport(app=web_app(hub, settings, manage_lifecycle=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            asking = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
            for origin in ("https://app.example", "https://admin.example"):
                preflight = await client.options("/v1/messages", headers={"Origin": origin, **asking})
                assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == origin
                assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
                assert "access-control-allow-credentials" not in preflight.headers
                assert (await client.get("/health", headers={"Origin": origin})).headers["access-control-allow-origin"] == origin
            for origin in ("https://evil.example", "https://app.example.evil.example", "null"):
                assert "access-control-allow-origin" not in (await client.get("/health", headers={"Origin": origin})).headers
                refused(await client.options("/v1/messages", headers={"Origin": origin, **asking}), 400, "cors_rejected")
    finally:
        await hub.stop()


async def test_error_answers_carry_the_security_headers(deployment, client):
    _, headers = await deployment.user()
    refused(await client.get("/v1/users/me"), 401)
    refused(await client.get(f"/v1/conversations/{uuid.uuid4()}", headers=headers), 404)
    refused(await client.get("/no/such/route"), 404)
    refused(await client.delete("/health"), 405)
    refused(await client.post("/v1/messages", json={}, headers=headers), 400)
    refused(await client.post("/auth/token", content=b"x" * (MAX_JSON_BODY + 1), headers=JSON), 413)


async def test_a_host_name_that_is_not_allowed_is_refused_before_any_link_is_built(deployment, client):
    _, headers = await deployment.user()
    evil = {**headers, "Host": "evil.example"}
    for response in (
        await client.post("/v1/files/initiate", json={"filename": "a", "file_size": 1}, headers=evil),
        await client.get("/v1/users/me", headers=evil),
        await client.get("/no/such/route", headers={"Host": "evil.example:8000"}),
        await client.post("/auth/token", json={"username": "x", "password": "y"}, headers={"Host": "localhost.evil.example"}),
    ):
        refused(response, 400, "host_not_allowed")
    port = client.base_url.port
    for host in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST"):
        allowed = {**headers, "Host": f"{host}:{port}" if port else host}
        started = await client.post("/v1/files/initiate", json={"filename": "a", "file_size": 1}, headers=allowed)
        assert started.status_code == 201, (host, started.text)
        if deployment.profile == "embedded":  # links point back at the API, at the host the client used
            assert urlparse(started.json()["upload_url"]).hostname == host.strip("[]").lower()


async def test_links_come_from_the_public_url_whatever_host_was_used(tmp_path):
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.settings import load_settings
    from chat4all.entrypoints.web import web_app

    settings = load_settings(
        {**FAST_ARGON2, "CHAT4ALL_DATA_DIR": str(tmp_path), "CHAT4ALL_PUBLIC_URL": "https://chat.example/api"}
    )
    hub = build("embedded", settings)
    try:
        from chat4all.entrypoints.cli import migrate

        await migrate(settings)
        await hub.register_user.execute("pub", "pass-word-123")
        transport = httpx.ASGITransport(app=web_app(hub, settings, manage_lifecycle=False, bind_host="10.1.2.3"))
        async with httpx.AsyncClient(transport=transport, base_url="http://10.1.2.3:8000") as client:
            token = (await client.post("/auth/token", json={"username": "pub", "password": "pass-word-123"})).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            for host in ("10.1.2.3:8000", "chat.example", "localhost"):  # the bind address, the public host, loopback
                started = await client.post("/v1/files/initiate", json={"filename": "a", "file_size": 1}, headers={**headers, "Host": host})
                assert started.json()["upload_url"].startswith("https://chat.example/api/v1/files/upload?"), started.text
            refused(await client.get("/health", headers={"Host": "10.1.2.4"}), 400, "host_not_allowed")
    finally:
        await hub.stop()
