"""Hostile input, on both profiles: every refusal is a 4xx with error_code and detail and nothing
internal in it, limits hold at their boundaries, file names never reach storage, links are
short-lived and scoped, CORS is closed unless configured, secrets never reach the logs."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import uuid
from urllib.parse import parse_qs, unquote, urlparse

import httpx
import pytest

from tests.integration.http.helpers import conversation, text_message, upload_file
from tests.integration.http.profiles import FAST_ARGON2
from tests.integration.http.test_auth_http import assert_error

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
INTERNALS = re.compile(r"Traceback|File \"|\.py\b|site-packages|sqlalchemy|psycopg|sqlite|asyncpg|SELECT |INSERT |UPDATE |/work/|/tmp/")
JSON = {"Content-Type": "application/json"}
BINARY = {"Content-Type": "application/octet-stream"}
MAX_JSON_BODY = 256 * 1024


def refused(response, status: int, code: str | None = None) -> dict:
    """A uniform refusal: the status, {detail, error_code}, the security headers, and nothing internal."""
    body = assert_error(response, status, code)
    assert not INTERNALS.search(response.text), response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    return body


async def chunked(data: bytes, piece: int = 64 * 1024):
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


# --- bodies and parameters no client should send ----------------------------------------------

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


# --- file names and storage ----------------------------------------------------------------------

ODD_NAME = "Relatório — ünïcødé 📎 ; rm -rf ~ $(x) 'q' \"q\" <b>.pdf"


async def stored_names(deployment) -> list[str]:
    """Every object key (distributed) or path below the data directory (embedded)."""
    settings = deployment.hub.settings
    if deployment.profile == "embedded":
        root = settings.data_dir / "files"
        return [str(path.relative_to(root)) for path in root.rglob("*")]
    import boto3

    s3 = boto3.client("s3", endpoint_url=settings.s3.endpoint_url, aws_access_key_id=settings.s3.access_key,
                      aws_secret_access_key=settings.s3.secret_key, region_name=settings.s3.region)
    listing = s3.list_objects_v2(Bucket=settings.s3.bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


async def test_file_names_never_become_paths_or_keys(deployment, client):
    _, headers = await deployment.user()
    for name in ("../../x", "..\\..\\x", "/etc/passwd", "a/b", "invoice\u202egpj.exe"):
        refused(await client.post("/v1/files/initiate", json={"filename": name, "file_size": 1}, headers=headers), 400)
    data = b"odd name" * 10
    file_id = await upload_file(client, headers, data, filename=ODD_NAME)
    status = (await client.get(f"/v1/files/{file_id}", headers=headers)).json()
    assert status["filename"] == ODD_NAME and status["status"] == "completed"
    names = await stored_names(deployment)
    assert any(file_id in name for name in names)
    uuid_only = re.compile(r"^(files/)?[0-9a-f-]{36}$|^uploads/[0-9a-f-]{36}(/chunks/\d+)?$|^uploads/[0-9a-f-]{36}/\d+\.part$")
    for name in names:
        assert "ü" not in name and ".pdf" not in name and "rm -rf" not in name, name
        if file_id in name:
            assert uuid_only.match(name), name
    # the name only travels back as an attachment file name, percent-encoded
    download = status["download_url"]
    if deployment.profile == "embedded":
        response = await client.get(download, headers=headers)
        assert response.content == data
        disposition = response.headers["content-disposition"]
    else:
        disposition = parse_qs(urlparse(download).query)["response-content-disposition"][0]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == ODD_NAME
    assert "\n" not in disposition and "\r" not in disposition


async def test_a_download_names_the_file_alike_whether_streamed_or_redirected(deployment, client):
    from chat4all.domain.uploads import attachment_disposition

    _, headers = await deployment.user()
    file_id = await upload_file(client, headers, b"odd name", filename=ODD_NAME)
    response = await client.get(f"/v1/files/{file_id}/content", headers=headers)
    if response.status_code == 307:  # distributed: storage serves it, with the disposition signed into the URL
        disposition = parse_qs(urlparse(response.headers["location"]).query)["response-content-disposition"][0]
    else:
        assert response.status_code == 200 and response.content == b"odd name"
        disposition = response.headers["content-disposition"]
    assert disposition == attachment_disposition(ODD_NAME)
    assert disposition.startswith('attachment; filename="Relat_rio _ _n_c_d_ _ ; rm -rf ~ $(x) \'q\' _q_ <b>.pdf"; ')


async def test_content_types_are_only_echoed_never_served(deployment, client):
    _, headers = await deployment.user()
    started = await client.post(
        "/v1/files/initiate", json={"filename": "page.html", "file_size": 20, "content_type": "text/html; charset=utf-8"}, headers=headers
    )
    file_id = started.json()["file_id"]
    data = b"<script>x()</script>"
    await client.patch("/v1/files/upload", params={"file_id": file_id, "chunk_id": 0}, content=data, headers={**headers, **BINARY})
    await client.post("/v1/files/complete", json={"file_id": file_id, "checksum": hashlib.sha256(data).hexdigest()}, headers=headers)
    status = (await client.get(f"/v1/files/{file_id}", headers=headers)).json()
    assert status["content_type"] == "text/html; charset=utf-8"
    if deployment.profile == "embedded":
        response = await client.get(status["download_url"], headers=headers)
    else:
        assert "response-content-type" not in status["download_url"]
        async with httpx.AsyncClient() as outside:
            response = await outside.get(status["download_url"])
    assert response.status_code == 200 and response.content == data
    assert "html" not in response.headers.get("content-type", "")


async def test_links_are_short_lived_and_scoped_to_one_object(deployment, client):
    _, headers = await deployment.user()
    data = b"link test" * 5
    file_id = await upload_file(client, headers, data)
    download = (await client.get(f"/v1/files/{file_id}", headers=headers)).json()["download_url"]
    started = (await client.post("/v1/files/initiate", json={"filename": "u.bin", "file_size": 10}, headers=headers)).json()
    if deployment.profile == "embedded":
        # links point back at the API, which wants the bearer token for each of them
        refused(await client.get(download), 401)
        refused(await client.patch(started["upload_url"], content=b"x" * 10, headers=BINARY), 401)
        return
    bucket = deployment.hub.settings.s3.bucket
    for url, key in ((download, f"files/{file_id}"), (started["upload_url"], f"uploads/{started['file_id']}/chunks/")):
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        assert query["X-Amz-Expires"] == ["900"], url
        assert parsed.path.startswith(f"/{bucket}/{key}"), url
    assert parse_qs(urlparse(started["upload_url"]).query)["X-Amz-SignedHeaders"] == ["content-length;host"]
    async with httpx.AsyncClient() as outside:
        assert (await outside.get(download)).content == data
        elsewhere = download.replace(f"files/{file_id}", f"files/{uuid.uuid4()}")
        assert (await outside.get(elsewhere)).status_code == 403  # the signature covers the key
        # and the chunk URL its size: 10 bytes, no more, no less
        for wrong in (b"x" * 9, b"x" * 11):
            assert (await outside.put(started["upload_url"], content=wrong)).status_code == 403
        assert (await outside.put(started["upload_url"], content=b"x" * 10)).status_code == 200


# --- CORS and headers --------------------------------------------------------------------------

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


# --- Host names --------------------------------------------------------------------------------

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


# --- secrets and logs --------------------------------------------------------------------------

async def test_no_password_or_token_reaches_any_log_line(deployment, client, caplog):
    """Every logger at DEBUG (SQL statements included) while a user logs in, fails to log in, uses
    the token on good and bad requests and logs out; neither secret may appear anywhere."""
    caplog.set_level(logging.DEBUG)
    password = "Secret-Pass-" + uuid.uuid4().hex
    wrong = "Wrong-Pass-" + uuid.uuid4().hex
    username = "logcheck_" + uuid.uuid4().hex[:8]
    await deployment.hub.register_user.execute(username, password)
    assert (await client.post("/auth/token", json={"username": username, "password": wrong})).status_code == 401
    login = await client.post("/auth/token", json={"username": username, "password": password})
    token = login.json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    await client.get("/v1/users/me", headers=auth)
    await client.get(f"/v1/messages/{uuid.uuid4()}", headers=auth)
    await client.post("/v1/messages", json={"bad": True}, headers=auth)
    await client.post("/auth/logout", headers=auth)
    await client.get("/v1/users/me", headers=auth)  # revoked now
    logged = caplog.text + "".join(log.read_text(errors="replace") for log in deployment.logs)
    assert "/auth/token" in caplog.text  # the capture did see the traffic
    if deployment.profile == "embedded":
        assert "SELECT" in caplog.text  # ... down to the SQL statements, parameters included
    for secret in (password, wrong, token):
        assert secret not in logged
    for response in (login,):
        assert password not in response.text


@pytest.mark.parametrize("path", ["/docs/openapi.json"])
async def test_the_api_document_names_no_internal_detail(client, path):
    text = (await client.get(path)).text
    assert not re.search(r"/work/|site-packages|Traceback|postgresql\+|sqlite\+", text)
