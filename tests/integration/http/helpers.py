from __future__ import annotations

import asyncio
import hashlib
import time
import uuid


async def conversation(deployment, headers, members, type_="private") -> str:
    response = await deployment.client.post("/v1/conversations", json={"type": type_, "members": members}, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()["conversation_id"]


def text_message(conversation_id: str, sender: str, text="hello", channels=("whatsapp",), **extra) -> dict:
    return {
        "message_id": str(uuid.uuid4()),
        "conversation_id": conversation_id,
        "from": sender,
        "channels": list(channels),
        "payload": {"type": "text", "text": text},
        **extra,
    }


async def wait_for_status(client, headers, message_id: str, statuses=("delivered", "failed"), timeout=5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/v1/messages/{message_id}", headers=headers)).json()
        if body.get("status") in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"message {message_id} stuck: {body}")
        await asyncio.sleep(0.05)


async def upload_file(client, headers, data: bytes, filename="blob.bin", complete=True) -> str:
    started = await client.post("/v1/files/initiate", json={"filename": filename, "file_size": len(data)}, headers=headers)
    assert started.status_code == 201, started.text
    info = started.json()
    size = info["chunk_size"]
    for index in range(info["total_chunks"]):
        response = await client.patch(
            "/v1/files/upload",
            params={"file_id": info["file_id"], "chunk_id": index},
            content=data[index * size : (index + 1) * size],
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
    if complete:
        done = await client.post(
            "/v1/files/complete", json={"file_id": info["file_id"], "checksum": hashlib.sha256(data).hexdigest()}, headers=headers
        )
        assert done.status_code == 200, done.text
    return info["file_id"]
