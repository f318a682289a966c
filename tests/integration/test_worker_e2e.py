"""The distributed profile end to end, as an operator runs it: `chat4all migrate`, `chat4all serve`
and `chat4all worker` as separate processes on the real PostgreSQL, Kafka and S3 servers.

The deployment gets a database, a bucket, a consumer group and a topic prefix of its own
(CHAT4ALL_KAFKA_TOPIC_PREFIX), so other deployments on the same servers, such as a benchmark
running meanwhile, neither see its events nor slow it down; `migrate` creates its topics and the
test deletes them afterwards. An unreachable server fails the tests; it is never a reason to skip them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import time
import uuid

import httpx
import pytest

from chat4all.adapters.storage.s3 import S3FileStorage
from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
from chat4all.application.work import delivery_stream as channel_topic
from tests.integration.worker_deployment import (  # noqa: F401 - fixtures
    CONNECTOR_LINE,
    DELIVERY_TIMEOUT,
    PASSWORD,
    PREFIX,
    Deployment,
    deployment,
    s3_client,
    topic_events,
)

pytestmark = pytest.mark.services


@pytest.fixture
async def api(deployment):
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=30) as client:
        yield client


async def login(api: httpx.AsyncClient, name: str) -> dict[str, str]:
    response = await api.post("/auth/token", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def create_conversation(api, headers, kind: str, members: list[str]) -> str:
    response = await api.post("/v1/conversations", json={"type": kind, "members": members}, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()["conversation_id"]


async def send(api, headers, conversation_id: str, sender: str, channels: list[str], payload: dict) -> str:
    message_id = str(uuid.uuid4())
    body = {
        "message_id": message_id,
        "conversation_id": conversation_id,
        "from": sender,
        "channels": channels,
        "payload": payload,
    }
    response = await api.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return message_id


async def settle(api, headers, message_id: str, deployment: Deployment, accepted_at: float) -> dict:
    """Polls the message until delivered or failed, within DELIVERY_TIMEOUT of its acceptance."""
    while True:
        body = (await api.get(f"/v1/messages/{message_id}", headers=headers)).json()
        if body["status"] in ("delivered", "failed"):
            deployment.latencies.append(time.monotonic() - accepted_at)
            return body
        assert time.monotonic() - accepted_at < DELIVERY_TIMEOUT, (
            f"message {message_id} not settled within {DELIVERY_TIMEOUT}s: {body}\n{deployment.diagnostics()}"
        )
        await asyncio.sleep(0.02)


async def send_and_settle(api, headers, deployment, conversation_id, sender, channels, payload=None) -> dict:
    accepted_at = time.monotonic()
    message_id = await send(api, headers, conversation_id, sender, channels, payload or {"type": "text", "text": "olá"})
    return await settle(api, headers, message_id, deployment, accepted_at)


def connector_line(message_id: str, user_id: str, channel: str) -> str:
    return f"INFO: Mensagem {message_id} enviada para o usuário {user_id} no {channel}"


def lines_about(deployment: Deployment, message_id: str) -> list[str]:
    return [line for line in deployment.output("worker").splitlines() if message_id in line]


async def test_api_reports_database_broker_and_storage_ready(api):
    response = await api.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


async def test_private_conversation_messages_reach_each_channel_once(api, deployment):
    users = deployment.users
    headers = await login(api, "ana")
    conversation_id = await create_conversation(api, headers, "private", [users["ana"], users["bruno"]])

    whatsapp = await send_and_settle(api, headers, deployment, conversation_id, users["ana"], ["whatsapp"])
    instagram = await send_and_settle(api, headers, deployment, conversation_id, users["ana"], ["instagram"])
    both = await send_and_settle(api, headers, deployment, conversation_id, users["ana"], ["all"])

    for message in (whatsapp, instagram, both):
        assert message["status"] == "delivered", message
    assert whatsapp["deliveries"] == {"whatsapp": "delivered"}
    assert instagram["deliveries"] == {"instagram": "delivered"}
    assert both["deliveries"] == {"whatsapp": "delivered", "instagram": "delivered"}

    assert lines_about(deployment, whatsapp["message_id"]) == [
        connector_line(whatsapp["message_id"], users["bruno"], "WhatsApp")
    ]
    assert lines_about(deployment, instagram["message_id"]) == [
        connector_line(instagram["message_id"], users["bruno"], "Instagram")
    ]
    assert sorted(lines_about(deployment, both["message_id"])) == sorted(
        [
            connector_line(both["message_id"], users["bruno"], "WhatsApp"),
            connector_line(both["message_id"], users["bruno"], "Instagram"),
        ]
    )


async def test_group_conversation_reaches_every_other_member_on_every_channel(api, deployment):
    users = deployment.users
    headers = await login(api, "bruno")
    conversation_id = await create_conversation(api, headers, "group", [users["ana"], users["bruno"], users["carla"]])
    messages = await asyncio.gather(
        *(send_and_settle(api, headers, deployment, conversation_id, users["bruno"], ["all"]) for _ in range(5))
    )
    for message in messages:
        assert message["status"] == "delivered", message
        expected = [
            connector_line(message["message_id"], users[member], channel)
            for member in ("ana", "carla")
            for channel in ("WhatsApp", "Instagram")
        ]
        assert sorted(lines_about(deployment, message["message_id"])) == sorted(expected)


async def test_worker_stdout_carries_only_connector_lines(deployment, api):
    headers = await login(api, "carla")
    users = deployment.users
    conversation_id = await create_conversation(api, headers, "private", [users["carla"], users["ana"]])
    await send_and_settle(api, headers, deployment, conversation_id, users["carla"], ["whatsapp"])
    lines = deployment.output("worker").splitlines()
    assert lines, "the worker printed no connector line"
    assert [line for line in lines if not CONNECTOR_LINE.match(line)] == []
    assert "Mensagem" not in deployment.output("api"), "the API process delivered instead of the worker"


async def test_the_worker_that_routes_a_message_delivers_it_without_the_channel_topics(api, deployment):
    """CHAT4ALL_DELIVER_WHILE_ROUTING (default true): one pass through Kafka, `message_processing`
    keyed by conversation; the channel topics carry only what workers with the setting false route
    (tests/integration/faults/test_scale_out.py runs one)."""
    users = deployment.users
    headers = await login(api, "ana")
    conversation_id = await create_conversation(api, headers, "private", [users["ana"], users["carla"]])
    message = await send_and_settle(api, headers, deployment, conversation_id, users["ana"], ["all"])
    assert message["status"] == "delivered"

    routing = [
        (key, event)
        for key, event in await topic_events(PREFIX + MESSAGE_PROCESSING)
        if event.get("message_id") == message["message_id"]
    ]
    assert routing and {key for key, _ in routing} == {conversation_id}
    for channel in ("whatsapp", "instagram"):
        topic = PREFIX + channel_topic(channel)  # this deployment's whatsapp_outgoing / instagram_outgoing
        carried = [event for _, event in await topic_events(topic) if event.get("message_id") == message["message_id"]]
        assert carried == [], f"{topic} carried message {message['message_id']}"


async def upload(api, headers, data: bytes, filename: str = "report.pdf") -> str:
    started = await api.post("/v1/files/initiate", json={"filename": filename, "file_size": len(data)}, headers=headers)
    assert started.status_code == 201, started.text
    info = started.json()
    size = info["chunk_size"]
    for index in range(info["total_chunks"]):
        response = await api.patch(
            "/v1/files/upload",
            params={"file_id": info["file_id"], "chunk_id": index},
            content=data[index * size : (index + 1) * size],
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
    done = await api.post(
        "/v1/files/complete",
        json={"file_id": info["file_id"], "checksum": hashlib.sha256(data).hexdigest()},
        headers=headers,
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    return info["file_id"]


async def test_file_message_is_delivered(api, deployment):
    users = deployment.users
    headers = await login(api, "ana")
    conversation_id = await create_conversation(api, headers, "private", [users["ana"], users["bruno"]])
    file_id = await upload(api, headers, os.urandom(300_000))
    message = await send_and_settle(
        api, headers, deployment, conversation_id, users["ana"], ["whatsapp"], {"type": "file", "file_id": file_id}
    )
    assert message["status"] == "delivered", message
    assert message["payload"]["file_id"] == file_id
    assert lines_about(deployment, message["message_id"]) == [
        connector_line(message["message_id"], users["bruno"], "WhatsApp")
    ]


async def test_file_missing_from_storage_fails_with_a_reason(api, deployment):
    users = deployment.users
    headers = await login(api, "ana")
    conversation_id = await create_conversation(api, headers, "private", [users["ana"], users["carla"]])
    file_id = await upload(api, headers, b"short-lived bytes" * 100, filename="gone.txt")
    bucket = deployment.env["CHAT4ALL_S3_BUCKET"]
    client = s3_client()
    key = S3FileStorage(client, bucket).file_key(uuid.UUID(file_id))
    client.head_object(Bucket=bucket, Key=key)
    client.delete_object(Bucket=bucket, Key=key)

    message = await send_and_settle(
        api, headers, deployment, conversation_id, users["ana"], ["whatsapp"], {"type": "file", "file_id": file_id}
    )
    assert message["status"] == "failed", message
    assert message["deliveries"] == {"whatsapp": "failed"}
    failures = [entry for entry in message["history"] if entry["status"] == "failed"]
    assert failures and all(entry["detail"] for entry in failures), message["history"]
    assert any("missing" in entry["detail"] for entry in failures), message["history"]
    assert lines_about(deployment, message["message_id"]) == []


async def test_worker_stops_cleanly_on_sigterm(deployment):
    worker = deployment.processes["worker"]
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker ignored SIGTERM for 20s\n{deployment.diagnostics()}")
    deployment.timings["worker stop"] = time.monotonic() - started
    assert code == 0, deployment.diagnostics()
    assert "Traceback" not in deployment.errors("worker"), deployment.errors("worker")
