"""The embedded profile as a newcomer runs it: `chat4all serve` in a subprocess, users from the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest_asyncio

from tests.integration.http.helpers import conversation, text_message, wait_for_status
from tests.integration.http.profiles import CHANNEL_SECRETS, FAST_ARGON2, Processes, wait_ready
from tests.ports import low_port

PASSWORD = "e2e-password-1"
HUNDRED_MB = 100 * 1024 * 1024


@pytest_asyncio.fixture(scope="module")
async def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("embedded-e2e")
    processes = Processes({**FAST_ARGON2, **CHANNEL_SECRETS, "CHAT4ALL_DATA_DIR": str(workdir / "data")}, workdir)
    names = [f"member{index}" for index in range(10)]
    ids = {name: processes.cli("users", "add", name, "--password", PASSWORD).strip() for name in names[:2]}
    port = low_port()
    log = processes.start("serve", "serve", "--port", str(port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await wait_ready(client, [log])
            # the CLI works against the same data directory while the server runs
            with ThreadPoolExecutor(max_workers=4) as pool:
                added = pool.map(lambda name: processes.cli("users", "add", name, "--password", PASSWORD), names[2:])
                ids.update({name: output.strip() for name, output in zip(names[2:], added, strict=True)})
            listed = processes.cli("users", "list")
            assert all(f"{user_id}  {name}" in listed for name, user_id in ids.items())
            yield client, ids, log, processes
    finally:
        processes.stop()


async def login(client, name: str) -> dict[str, str]:
    token = (await client.post("/auth/token", json={"username": name, "password": PASSWORD})).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


class Api:
    def __init__(self, client):
        self.client = client


async def test_all_channels_log_one_line_per_recipient_and_channel(hub):
    client, ids, log, _ = hub
    headers = await login(client, "member0")
    deployment = Api(client)
    conversation_id = await conversation(deployment, headers, [ids["member0"], ids["member1"]])
    body = text_message(conversation_id, ids["member0"], channels=["all"])
    assert (await client.post("/v1/messages", json=body, headers=headers)).status_code == 200
    message = await wait_for_status(client, headers, body["message_id"])
    assert message["status"] == "delivered"
    await asyncio.sleep(0.2)
    output = log.read_text()
    for channel in ("WhatsApp", "Instagram"):
        line = f"INFO: Mensagem {body['message_id']} enviada para o usuário {ids['member1']} no {channel}"
        assert output.count(line) == 1, output[-2000:]


async def test_group_of_ten_everyone_reads_the_message(hub):
    client, ids, log, _ = hub
    headers = await login(client, "member0")
    conversation_id = await conversation(Api(client), headers, list(ids.values()), "group")
    body = text_message(conversation_id, ids["member0"], channels=["whatsapp"], text="all hands")
    await client.post("/v1/messages", json=body, headers=headers)
    assert (await wait_for_status(client, headers, body["message_id"]))["status"] == "delivered"
    output = log.read_text()
    for name, user_id in ids.items():
        member_headers = await login(client, name)
        listing = (await client.get(f"/v1/conversations/{conversation_id}/messages", headers=member_headers)).json()
        assert [m["payload"]["text"] for m in listing["messages"]] == ["all hands"]
        expected = 0 if name == "member0" else 1
        assert output.count(f"Mensagem {body['message_id']} enviada para o usuário {user_id} no WhatsApp") == expected


async def test_hundred_megabyte_upload_verified_and_sent_as_a_file_message(hub):
    client, ids, _, _ = hub
    headers = await login(client, "member0")
    data = os.urandom(HUNDRED_MB)
    checksum = hashlib.sha256(data).hexdigest()
    info = (await client.post("/v1/files/initiate", json={"filename": "big.bin", "file_size": len(data)}, headers=headers)).json()
    size = info["chunk_size"]
    assert info["total_chunks"] == -(-len(data) // size)
    first_chunk = data[:size]
    for index in range(info["total_chunks"]):
        chunk = data[index * size : (index + 1) * size]
        if index == 3:
            chunk = b"\0" * len(chunk)  # damaged in transit
        response = await client.patch(
            "/v1/files/upload", params={"file_id": info["file_id"], "chunk_id": index}, content=chunk,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
    rejected = await client.post("/v1/files/complete", json={"file_id": info["file_id"], "checksum": checksum}, headers=headers)
    assert rejected.status_code == 400 and rejected.json()["error_code"] == "checksum_mismatch"
    await client.patch(
        "/v1/files/upload", params={"file_id": info["file_id"], "chunk_id": 3}, content=data[3 * size : 4 * size],
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    done = await client.post("/v1/files/complete", json={"file_id": info["file_id"], "checksum": checksum}, headers=headers)
    assert done.status_code == 200 and done.json()["checksum"] == checksum
    status = (await client.get(f"/v1/files/{info['file_id']}", headers=headers)).json()
    digest = hashlib.sha256()
    async with client.stream("GET", status["download_url"], headers=headers) as download:
        assert download.status_code == 200
        async for block in download.aiter_bytes():
            digest.update(block)
    assert digest.hexdigest() == checksum and first_chunk == data[:size]
    conversation_id = await conversation(Api(client), headers, [ids["member0"], ids["member1"]])
    message = {**text_message(conversation_id, ids["member0"]), "payload": {"type": "file", "file_id": info["file_id"]}}
    assert (await client.post("/v1/messages", json=message, headers=headers)).status_code == 200
    delivered = await wait_for_status(client, headers, message["message_id"])
    assert delivered["status"] == "delivered" and delivered["payload"]["file_size"] == HUNDRED_MB


async def test_a_file_whose_bytes_vanished_fails_with_the_reason(hub, tmp_path):
    client, ids, _, _ = hub
    headers = await login(client, "member0")
    data = b"soon gone" * 1000
    info = (await client.post("/v1/files/initiate", json={"filename": "gone.txt", "file_size": len(data)}, headers=headers)).json()
    await client.patch("/v1/files/upload", params={"file_id": info["file_id"], "chunk_id": 0}, content=data,
                       headers={**headers, "Content-Type": "application/octet-stream"})
    await client.post("/v1/files/complete", json={"file_id": info["file_id"], "checksum": hashlib.sha256(data).hexdigest()}, headers=headers)
    data_dir = re.sub(r"/[^/]*$", "", str(hub[2])) + "/data"
    stored = [os.path.join(root, name) for root, _, names in os.walk(data_dir) for name in names if info["file_id"] in name]
    for path in stored:
        os.remove(path)
    conversation_id = await conversation(Api(client), headers, [ids["member0"], ids["member1"]])
    message = {**text_message(conversation_id, ids["member0"]), "payload": {"type": "file", "file_id": info["file_id"]}}
    await client.post("/v1/messages", json=message, headers=headers)
    failed = await wait_for_status(client, headers, message["message_id"])
    assert failed["status"] == "failed"
    assert any("missing" in (entry["detail"] or "") for entry in failed["history"])


async def test_operators_list_the_replies_the_hub_could_not_place(hub):
    client, _, _, processes = hub
    secret = CHANNEL_SECRETS["CHAT4ALL_CHANNEL_SECRET_WHATSAPP"].encode()
    reply = {"from": "+5511900001111", "id": "wamid.stray", "text": {"body": "quem é?"}, "context": {"id": "wamid.x"}}
    raw = json.dumps(reply).encode()
    signature = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}
    assert (await client.post("/v1/channels/whatsapp/inbound", content=raw, headers=headers)).status_code == 202

    [listed] = json.loads(processes.cli("inbound", "unmatched", "--channel", "whatsapp", "--json"))
    assert {key: listed[key] for key in ("channel", "reason", "from", "provider_message_id", "answers", "text")} == {
        "channel": "whatsapp", "reason": "unknown_handle", "from": "+5511900001111",
        "provider_message_id": "wamid.stray", "answers": "wamid.x", "text": "quem é?",
    }
    assert "unknown_handle  from +5511900001111  id wamid.stray" in processes.cli("inbound", "unmatched")
