"""/metrics is not public on the API port: by default it is not served there at all; with
CHAT4ALL_METRICS_TOKEN it wants that bearer token; with CHAT4ALL_METRICS_PORT it has a listener of
its own (loopback by default) that serves nothing else."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.http.profiles import FAST_ARGON2, METRICS_TOKEN, Processes
from tests.integration.http.test_auth_http import assert_error
from tests.ports import low_port


def samples(text: str) -> dict[str, float]:
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and not line.startswith("#")}


async def test_by_default_the_api_port_does_not_serve_metrics(tmp_path):
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.settings import load_settings
    from chat4all.entrypoints.web import web_app

    settings = load_settings({**FAST_ARGON2, "CHAT4ALL_DATA_DIR": str(tmp_path)})
    hub = build("embedded", settings)
    try:
        transport = httpx.ASGITransport(app=web_app(hub, settings, manage_lifecycle=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            assert_error(await client.get("/metrics"), 404, "not_found")
            assert_error(await client.get("/metrics", headers={"Authorization": "Bearer anything-at-all-123"}), 404)
            assert "/metrics" not in (await client.get("/docs/openapi.json")).json()["paths"]
    finally:
        await hub.stop()


async def test_with_a_token_the_api_port_serves_metrics_to_its_holders_only(deployment, client):
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": METRICS_TOKEN},
                    {"Authorization": f"Basic {METRICS_TOKEN}"}, {"Authorization": f"Bearer {METRICS_TOKEN}x"}):
        response = await client.get("/metrics", headers=headers)
        assert_error(response, 401, "invalid_metrics_token")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "chat4all_" not in response.text
    allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert allowed.status_code == 200 and "chat4all_messages_accepted_total" in samples(allowed.text)


@pytest.fixture
def serve_with_metrics_port(tmp_path):
    processes = Processes({**FAST_ARGON2, "CHAT4ALL_DATA_DIR": str(tmp_path / "data"),
                           "CHAT4ALL_METRICS_PORT": str(metrics_port := low_port())}, tmp_path)
    api_port = low_port()
    log = processes.start("api", "serve", "--port", str(api_port))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield api_port, metrics_port
    finally:
        processes.stop()


def test_a_metrics_port_serves_metrics_and_nothing_else_while_the_api_port_keeps_them_hidden(serve_with_metrics_port):
    api_port, metrics_port = serve_with_metrics_port
    api, own = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
    assert_error(httpx.get(f"{api}/metrics"), 404, "not_found")
    scraped = httpx.get(f"{own}/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert "chat4all_messages_accepted_total" in samples(scraped.text)
    assert scraped.headers["x-content-type-options"] == "nosniff"
    for path in ("/health", "/docs", "/docs/openapi.json", "/v1/users/me"):
        assert_error(httpx.get(f"{own}{path}"), 404, "not_found")
    assert httpx.get(f"{api}/health").status_code == 200
    with pytest.raises(httpx.ConnectError):  # bound to 127.0.0.1 (the default), not to every address
        httpx.get(f"http://127.0.0.2:{metrics_port}/metrics")
