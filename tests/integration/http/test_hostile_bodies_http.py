"""Hostile bodies and parameters, on both profiles: every refusal is a 4xx with error_code and detail
and nothing internal in it, undecodable and mangled bodies never get a 5xx, limits hold at their
boundaries."""

from __future__ import annotations

import json
import logging
import random
import uuid

import httpx

from tests.integration.http.helpers import conversation, text_message
from tests.integration.http.hostile import BINARY, JSON, MAX_JSON_BODY, refused


async def chunked(data: bytes, piece: int = 64 * 1024):
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


def hostile_requests(me: str, conversation_id: str) -> list[tuple[str, str, dict, int]]:
    message = text_message(conversation_id, me)
    return [
        # malformed or mistyped bodies
        ("POST", "/v1/messages", {"content": b"{not json", "headers": JSON}, 400),
        ("POST", "/v1/messages", {"content": b"\xff\xfe\x00{", "headers": JSON}, 400),
        ("POST", "/v1/messages", {"content": b"[" * 100_000, "headers": JSON}, 400),  # nested past the decoder's stack
        ("POST", "/v1/messages", {"content": b"null", "headers": JSON}, 400),
        ("POST", "/v1/messages", {"json": [message]}, 400),
        ("POST", "/v1/messages", {"json": {**message, "admin": True}}, 400),  # unknown field
        ("POST", "/v1/messages", {"json": {**message, "channels": "whatsapp"}}, 400),
        ("POST", "/v1/messages", {"json": {**message, "payload": {"type": "video", "url": "x"}}}, 400),
        ("POST", "/v1/files/initiate", {"json": {"filename": "a", "file_size": 10**30}}, 413),
        ("POST", "/v1/files/initiate", {"json": {"filename": "a", "file_size": 1.5}}, 400),
        # NUL and control characters, which PostgreSQL cannot store (these were 500s)
        ("POST", "/auth/token", {"json": {"username": "al\x00ice", "password": "x"}}, 401),
        ("GET", "/v1/users", {"params": {"username": "al\x00ice"}}, 200),
        ("POST", "/v1/files/initiate", {"json": {"filename": "a", "file_size": 1, "content_type": "text/plain; x=\x00"}}, 400),
        ("POST", "/v1/files/initiate", {"json": {"filename": "a\x00b", "file_size": 1}}, 400),
        ("POST", "/v1/messages", {"json": {**message, "payload": {"type": "text", "text": "a\x00b"}}}, 400),
        ("POST", "/v1/conversations", {"json": {"type": "private", "members": [me], "metadata": {"name": "a\x00"}}}, 400),
        # numbers out of range
        ("GET", "/v1/conversations", {"params": {"offset": str(10**30)}}, 400),
        ("GET", "/v1/users", {"params": {"offset": str(2**63)}}, 400),
        ("GET", f"/v1/conversations/{conversation_id}/messages", {"params": {"limit": "-1"}}, 400),
        ("PATCH", "/v1/files/upload", {"params": {"file_id": str(uuid.uuid4()), "chunk_id": str(10**30)}, "content": b"x", "headers": BINARY}, 400),
        # routes and methods that do not exist
        ("GET", "/v1/admin", {}, 404),
        ("GET", "/v1/files/../../etc/passwd", {}, 404),
        ("DELETE", "/v1/conversations", {}, 405),
        ("PUT", "/v1/messages", {"json": message}, 405),
    ]


async def test_hostile_requests_get_uniform_4xx_answers(deployment, client):
    me, headers = await deployment.user()
    other, _ = await deployment.add_user()
    conversation_id = await conversation(deployment, headers, [me, other])
    for method, path, request, status in hostile_requests(me, conversation_id):
        request = {**request, "headers": {**headers, **request.get("headers", {})}}
        response = await client.request(method, path, **request)
        assert response.status_code == status, (method, path, request.get("json") or request.get("params"), response.text)
        if status >= 400:
            refused(response, status)


# Invalid UTF-8 inside a JSON string: a stray byte, an overlong "/", a UTF-16 surrogate, a cut
# multibyte sequence, a code point past U+10FFFF. These reached a 500 and a logged traceback.
INVALID_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"]


def json_bodies(me: str, other: str, conversation_id: str, file_id: str) -> list[tuple[str, dict]]:
    message = text_message(conversation_id, me)
    return [
        ("/auth/token", {"username": "someone", "password": "xxxxxxxxxx"}),
        ("/v1/conversations", {"type": "private", "members": [me, other]}),
        ("/v1/messages", message),
        ("/v1/files/initiate", {"filename": "a.bin", "file_size": 4}),
        ("/v1/files/complete", {"file_id": file_id, "checksum": "0" * 64}),
    ]


def mutations(valid: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Byte-level edits of a valid body: a byte replaced, hostile bytes spliced in, a cut."""
    found = []
    for _ in range(count):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(body))
            edit = rng.choice(["replace", "insert", "cut"])
            if edit == "replace" and at < len(body):
                body[at] = rng.randrange(256)
            elif edit == "insert":
                body[at:at] = rng.choice([*INVALID_UTF8, rng.randbytes(rng.randint(1, 4))])
            else:
                del body[at:]
        found.append(bytes(body))
    return found


def assert_nothing_logged_as_an_error(deployment, caplog) -> None:
    """In-process the app's log records; as a subprocess the API's output (a traceback was ~33 lines)."""
    assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert "Traceback" not in deployment.connector_log() and " ERROR " not in deployment.connector_log()


async def post_as_stranger(deployment, path: str, body: bytes, headers: dict) -> httpx.Response:
    """Login attempts come from an address of their own, so the failures they count never throttle
    the logins of the other tests."""
    if path != "/auth/token":
        return await deployment.client.post(path, content=body, headers={**headers, **JSON})
    async with deployment.client_from("127.0.0.13") as stranger:
        return await stranger.post(path, content=body, headers=JSON)


async def test_undecodable_json_bodies_are_400_invalid_body_on_every_json_route(deployment, client, caplog):
    me, headers = await deployment.user()
    other, _ = await deployment.add_user()
    conversation_id = await conversation(deployment, headers, [me, other])
    file_id = (await client.post("/v1/files/initiate", json={"filename": "f", "file_size": 4}, headers=headers)).json()["file_id"]
    for path, body in json_bodies(me, other, conversation_id, file_id):
        valid = json.dumps(body).encode()
        inside_a_string = valid.index(b': "') + 3
        for sequence in INVALID_UTF8:
            hostile = valid[:inside_a_string] + sequence + valid[inside_a_string:]
            refused(await post_as_stranger(deployment, path, hostile, headers), 400, "invalid_body")
        refused(await post_as_stranger(deployment, path, valid[:-1], headers), 400, "invalid_body")
    assert_nothing_logged_as_an_error(deployment, caplog)


async def test_random_bytes_and_mangled_bodies_never_get_a_5xx(deployment, client, caplog):
    me, headers = await deployment.user()
    other, _ = await deployment.add_user()
    conversation_id = await conversation(deployment, headers, [me, other])
    file_id = (await client.post("/v1/files/initiate", json={"filename": "f", "file_size": 4}, headers=headers)).json()["file_id"]
    rng = random.Random(20261207)
    for path, body in json_bodies(me, other, conversation_id, file_id):
        valid = json.dumps(body, ensure_ascii=False).encode()
        for hostile in [*mutations(valid, rng, 40), *(rng.randbytes(rng.randint(0, 300)) for _ in range(10))]:
            response = await post_as_stranger(deployment, path, hostile, headers)
            assert response.status_code < 500, (path, hostile, response.text)
            if response.status_code >= 400:
                refused(response, response.status_code)
    upload = f"/v1/files/upload?file_id={file_id}&chunk_id=0"
    multipart = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabcd\r\n--b--\r\n'
    for hostile in mutations(multipart, rng, 40):
        response = await client.patch(upload, content=hostile, headers={**headers, "Content-Type": "multipart/form-data; boundary=b"})
        assert response.status_code < 500, (hostile, response.text)
        if response.status_code >= 400:
            refused(response, response.status_code)
    assert_nothing_logged_as_an_error(deployment, caplog)


async def test_an_oversized_json_body_is_413_whether_announced_or_streamed(deployment, client):
    _, headers = await deployment.user()
    big = b'{"username": "' + b"x" * MAX_JSON_BODY + b'", "password": "y"}'
    for path in ("/auth/token", "/v1/messages", "/v1/conversations", "/v1/files/initiate"):
        refused(await client.post(path, content=big, headers={**headers, **JSON}), 413, "request_too_large")
        refused(await client.post(path, content=chunked(big), headers={**headers, **JSON}), 413, "request_too_large")
    # just under the cap the body is read (and judged on its content)
    fits = b'{"username": "' + b"x" * (MAX_JSON_BODY - 100) + b'", "password": "y"}'
    refused(await client.post("/auth/token", content=fits, headers=JSON), 400)


async def test_limits_hold_at_their_boundaries(deployment, client):
    me, headers = await deployment.user()
    other, _ = await deployment.add_user()
    conversation_id = await conversation(deployment, headers, [me, other])

    async def send(**fields):
        return await client.post("/v1/messages", json={**text_message(conversation_id, me), **fields}, headers=headers)

    assert (await send(payload={"type": "text", "text": "é" * 4096})).status_code == 200
    refused(await send(payload={"type": "text", "text": "é" * 4097}), 400)
    assert (await send(channels=["whatsapp"] * 8)).status_code == 200
    refused(await send(channels=["whatsapp"] * 9), 400)

    async def initiate(filename: str):
        return await client.post("/v1/files/initiate", json={"filename": filename, "file_size": 1}, headers=headers)

    assert (await initiate("n" * 251 + ".txt")).status_code == 201
    refused(await initiate("n" * 252 + ".txt"), 400)

    async def group(name: str):
        body = {"type": "group", "members": [me, other, (await deployment.add_user())[0]], "metadata": {"name": name}}
        return await client.post("/v1/conversations", json=body, headers=headers)

    assert (await group("g" * 128)).status_code == 201
    refused(await group("g" * 129), 400)
    assert (await client.get("/v1/users", params={"username": "u" * 64}, headers=headers)).json() == {"users": []}
    refused(await client.get("/v1/users", params={"username": "u" * 65}, headers=headers), 400)


async def test_a_chunk_must_be_exactly_its_announced_size(deployment, client):
    _, headers = await deployment.user()
    started = (await client.post("/v1/files/initiate", json={"filename": "c.bin", "file_size": 10}, headers=headers)).json()
    params = {"file_id": started["file_id"], "chunk_id": 0}
    for data in (b"", b"x" * 9, b"x" * 11, b"x" * 100_000):
        refused(await client.patch("/v1/files/upload", params=params, content=data, headers={**headers, **BINARY}), 400, "invalid_chunk_size")
    streamed = await client.patch("/v1/files/upload", params=params, content=chunked(b"x" * 300_000, 1000), headers={**headers, **BINARY})
    refused(streamed, 400, "invalid_chunk_size")
    assert (await client.patch("/v1/files/upload", params=params, content=b"x" * 10, headers={**headers, **BINARY})).status_code == 200
