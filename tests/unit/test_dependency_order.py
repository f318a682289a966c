"""Route dependencies are resolved in turn on the request's task: no task group per request."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from litestar.routes import HTTPRoute, WebSocketRoute

PASSWORD = "correct horse battery"


def build_app(tmp_path):
    from chat4all.adapters.live_notices import InProcessLiveNotices
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.recipient import EventAdapters
    from chat4all.entrypoints.settings import load_settings
    from chat4all.entrypoints.web import web_app
    from tests.fakes import (
        InMemoryEventNotifier,
        InMemoryFileStorage,
        InMemoryOutboxReader,
        InMemoryStore,
        InMemoryUnitOfWorkFactory,
        InMemoryUserEventReader,
        PlainTestHasher,
        RecordingConnector,
        RecordingPublisher,
    )

    store = InMemoryStore()
    settings = load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path)})
    hub = build(
        "embedded",
        settings,
        uow=InMemoryUnitOfWorkFactory(store),
        storage=InMemoryFileStorage(),
        publisher=RecordingPublisher(),
        outbox_reader=InMemoryOutboxReader(store),
        connectors={"whatsapp": RecordingConnector("whatsapp")},
        hasher=PlainTestHasher(),
        events=EventAdapters(InMemoryUserEventReader(store), InMemoryEventNotifier(), InProcessLiveNotices()),
    )
    return hub, web_app(hub, settings, manage_lifecycle=False)


def test_every_route_resolves_its_dependencies_one_at_a_time(tmp_path):
    _, app = build_app(tmp_path)
    models = []
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            models += [model for _, model in route.route_handler_map.values()]
        elif isinstance(route, WebSocketRoute):
            models.append(route.handler_parameter_model)
    assert models
    assert all(len(level) == 1 for model in models for level in model.dependency_batches)
    send = next(r for r in app.routes if isinstance(r, HTTPRoute) and r.path == "/v1/messages")
    _, model = send.route_handler_map["POST"]
    order = [next(iter(level)).key for level in model.dependency_batches]
    assert order.index("resolve_token") < order.index("user")  # a dependency still follows what it needs


@pytest.mark.asyncio
async def test_a_send_starts_no_task_of_its_own_to_resolve_dependencies_and_still_checks_the_token(tmp_path):
    hub, app = build_app(tmp_path)
    alice = await hub.register_user.execute("alice", PASSWORD)
    bob = await hub.register_user.execute("bob", PASSWORD)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        login = await client.post("/auth/token", json={"username": "alice", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        started = await client.post("/v1/conversations", json={"type": "private", "members": [str(alice.id), str(bob.id)]}, headers=auth)
        body = {
            "message_id": "5f0c6a4e-0000-4000-8000-000000000001",
            "conversation_id": started.json()["conversation_id"],
            "from": str(alice.id),
            "channels": ["whatsapp"],
            "payload": {"type": "text", "text": "olá"},
        }
        tasks = []
        loop = asyncio.get_running_loop()
        factory = loop.get_task_factory()

        def counting(loop, coro, **kwargs):
            frame = getattr(coro, "cr_frame", None)
            tasks.append(f"{frame.f_globals['__name__'] if frame else '?'}.{coro.__qualname__}")
            return asyncio.Task(coro, loop=loop, **kwargs) if factory is None else factory(loop, coro, **kwargs)

        loop.set_task_factory(counting)
        try:
            sent = await client.post("/v1/messages", content=json.dumps(body), headers={**auth, "Content-Type": "application/json"})
            refused = await client.post("/v1/messages", json=body, headers={"Authorization": "Bearer not-a-token"})
        finally:
            loop.set_task_factory(factory)
    assert sent.status_code == 200, sent.text
    assert refused.status_code == 401 and refused.json()["error_code"] == "invalid_token"
    # The use cases' own loads (the conversation, the token) are tasks; resolving nothing else is.
    assert tasks and all(name.startswith("chat4all.") for name in tasks), tasks
