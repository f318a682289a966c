"""Per-user quotas over HTTP, on both profiles, with the defaults a deployment gets: 20 open uploads,
10 GiB announced by open uploads, 60 conversations started per hour. A full quota answers 429
`quota_exceeded` with a detail naming it, and `Retry-After` when waiting alone frees it."""

from __future__ import annotations

import hashlib

from tests.integration.http.helpers import conversation, upload_file
from tests.integration.http.test_auth_http import assert_error

GIB = 1024**3


async def initiate(client, headers, size: int = 100):
    return await client.post("/v1/files/initiate", json={"filename": "f.bin", "file_size": size}, headers=headers)


def quota_exceeded(response, quota: str) -> dict:
    body = assert_error(response, 429, "quota_exceeded")
    assert body["detail"].startswith(f"{quota} quota exceeded"), body
    return body


async def test_a_user_may_hold_20_uploads_open_and_completing_one_frees_a_slot(deployment, client):
    _, alice = await deployment.user()
    _, bob = await deployment.user()
    for _ in range(19):
        assert (await initiate(client, alice)).status_code == 201
    data = b"c" * 100
    last = await upload_file(client, alice, data, complete=False)  # the 20th, every byte sent
    refused = await initiate(client, alice)
    quota_exceeded(refused, "open_uploads")
    assert "retry-after" not in refused.headers  # completing an upload frees a slot, not waiting
    assert (await initiate(client, bob)).status_code == 201  # per user
    done = await client.post("/v1/files/complete", json={"file_id": last, "checksum": hashlib.sha256(data).hexdigest()}, headers=alice)
    assert done.status_code == 200, done.text
    assert (await initiate(client, alice)).status_code == 201
    quota_exceeded(await initiate(client, alice), "open_uploads")


async def test_open_uploads_may_announce_10_gib_in_all(deployment, client):
    _, alice = await deployment.user()
    for _ in range(5):
        assert (await initiate(client, alice, 2 * GIB)).status_code == 201
    quota_exceeded(await initiate(client, alice, 1), "open_upload_bytes")


async def test_a_user_may_start_60_conversations_an_hour(deployment, client):
    alice, alice_auth = await deployment.user()
    bob, bob_auth = await deployment.user()
    carol, _ = await deployment.user()
    pair = await conversation(deployment, alice_auth, [alice, bob])
    for _ in range(59):
        await conversation(deployment, alice_auth, [alice, bob, carol], "group")
    refused = await client.post("/v1/conversations", json={"type": "group", "members": [alice, bob, carol]}, headers=alice_auth)
    quota_exceeded(refused, "conversations_per_hour")
    assert 3500 <= int(refused.headers["retry-after"]) <= 3600
    # The existing private conversation is returned, not started: no quota needed.
    again = await client.post("/v1/conversations", json={"type": "private", "members": [alice, bob]}, headers=alice_auth)
    assert again.status_code == 200 and again.json()["conversation_id"] == pair
    await conversation(deployment, bob_auth, [bob, alice, carol], "group")  # per user
