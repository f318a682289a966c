"""Real `chat4all serve` processes for the live transports (Server-Sent Events and WebSockets need
a real server; the in-process test client buffers whole answers and speaks no WebSocket).

embedded: one `chat4all serve` on SQLite. distributed: two API processes (A and B) on one
PostgreSQL, so that a client connected to A can be sent what a request to B caused. Users are
registered directly in the database through a hub of the test's own (there is no signup route).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.integration.http.profiles import (
    FAST_ARGON2,
    PASSWORD,
    Processes,
    discard_distributed,
    distributed_env,
    wait_ready,
)
from tests.ports import low_port


class LiveDeployment:
    def __init__(self, profile: str, urls: list[str], clients: list[httpx.AsyncClient], hub, processes: Processes) -> None:
        self.profile = profile
        self.urls = urls  # [A, B]: the same process twice in the embedded profile
        self.clients = clients
        self.hub = hub
        self.processes = processes

    @property
    def client(self) -> httpx.AsyncClient:
        """API A, where the tests' listeners connect."""
        return self.clients[0]

    @property
    def sender(self) -> httpx.AsyncClient:
        """API B, through which the tests' changes are made (another process when distributed)."""
        return self.clients[-1]

    def ws_url(self, index: int = 0) -> str:
        return self.urls[index].replace("http://", "ws://") + "/v1/events/ws"

    async def user(self) -> tuple[str, str]:
        """A new user's id and bearer token."""
        username = f"user_{uuid.uuid4().hex[:10]}"
        user = await self.hub.register_user.execute(username, PASSWORD)
        response = await self.client.post("/auth/token", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return str(user.id), response.json()["access_token"]


@asynccontextmanager
async def live_deployment(profile: str, workdir: Path, extra_env: dict[str, str] | None = None) -> AsyncIterator[LiveDeployment]:
    from chat4all.entrypoints.settings import load_settings

    if profile == "embedded":
        env = {**FAST_ARGON2, "CHAT4ALL_DATA_DIR": str(workdir / "data"), **(extra_env or {})}
        apis = 1
    else:
        env = {**distributed_env("live"), **(extra_env or {})}
        apis = 2
    processes = Processes(env, workdir)
    processes.cli("migrate")
    ports = [low_port() for _ in range(apis)]
    logs = [processes.start(f"api{index}", "serve", "--port", str(port)) for index, port in enumerate(ports)]
    hub = _hub(load_settings(env))
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
    try:
        for client in clients:
            await wait_ready(client, logs)
        yield LiveDeployment(profile, urls, clients, hub, processes)
    finally:
        for client in clients:
            await client.aclose()
        processes.stop()
        await hub.stop()
        if profile == "distributed":
            await discard_distributed(env)


def _hub(settings):
    """A hub on the deployment's database, never started: it only registers users."""
    from chat4all.entrypoints.bootstrap import build, serving_role

    return build(serving_role(settings), settings)
