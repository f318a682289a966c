"""Access control on every id-taking endpoint, on both profiles.

The rule (README, "Security model"): a resource's outsiders get 403, ids that do not exist get
404 (for everybody), for every kind of resource; the entitled succeed.

The scene:
  alice, bob, carol, dave
  ab        private conversation alice-bob            (message msg_ab)
  group     group alice-bob-carol                     (message msg_group)
  bd        private conversation bob-dave
  cd        private conversation carol-dave
  shared    alice's completed upload, sent into ab    -> bob may see, download and forward it
  forwarded alice's upload sent into ab, then forwarded by bob into bd -> dave may see it too
  private   alice's completed upload, never sent      -> alice only
  pending   alice's upload, no chunk yet              -> only alice may send chunks
  filled    alice's upload, every chunk sent          -> only alice may complete it

Each row below is one request: who sends it, what, and what must come back. Rows that succeed
are chosen so that they change nobody's rights (re-sending into a conversation the file is
already shared in, a chunk re-sent), so the rows do not depend on their order.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from tests.integration.http.helpers import conversation, text_message, upload_file
from tests.integration.http.test_auth_http import assert_error

PLACEHOLDER = re.compile(r"\{(\w+)\}")
OK = "ok"  # 200/201, or 307 for a download redirected to object storage
USERS = ("alice", "bob", "carol", "dave")
FILE_SIZE = 100  # one chunk on every profile
PENDING_BYTES = bytes(range(FILE_SIZE))  # the one chunk of "pending"
FILLED_BYTES = b"f" * FILE_SIZE


@dataclass(frozen=True)
class Row:
    who: str
    method: str
    path: str
    expect: str | int
    json: Any = None
    params: dict[str, str] | None = None
    content: bytes | None = None

    def __str__(self) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in self.params.items()) if self.params else ""
        what = f" {describe(self.json)}" if self.json else ""
        return f"{self.method} {self.path}{query}{what} as {self.who} -> {self.expect}"


def describe(body: dict) -> str:
    if "payload" in body:
        payload = body["payload"]
        return f"[{payload.get('type')} {payload.get('file_id', '')} into {body['conversation_id']}]".replace(" ]", "]")
    return "[" + ", ".join(f"{key}={value}" for key, value in body.items() if key != "checksum") + "]"


def rows(method: str, path: str, *, ok: tuple[str, ...] = (), denied: tuple[str, ...] = (), **request) -> list[Row]:
    """The entitled users get OK, everybody else listed gets 403."""
    return [Row(who, method, path, OK, **request) for who in ok] + [Row(who, method, path, 403, **request) for who in denied]


def unknown(method: str, path: str, **request) -> list[Row]:
    """An id that does not exist is 404 for everybody."""
    return [Row(who, method, path, 404, **request) for who in USERS]


def send_text(conversation_key: str) -> dict:
    return {"message_id": "{new}", "conversation_id": conversation_key, "from": "{me}", "channels": ["whatsapp"],
            "payload": {"type": "text", "text": "hi"}}


def send_file(file_key: str, conversation_key: str) -> dict:
    return {**send_text(conversation_key), "payload": {"type": "file", "file_id": file_key}}


def complete(file_key: str, data: bytes = FILLED_BYTES) -> dict:
    return {"file_id": file_key, "checksum": hashlib.sha256(data).hexdigest()}


CHUNK = {"content": PENDING_BYTES}

MATRIX: list[Row] = [
    # conversations
    *rows("GET", "/v1/conversations/{ab}", ok=("alice", "bob"), denied=("carol", "dave")),
    *rows("GET", "/v1/conversations/{group}", ok=("alice", "bob", "carol"), denied=("dave",)),
    *unknown("GET", "/v1/conversations/{unknown}"),
    *rows("GET", "/v1/conversations/{ab}/messages", ok=("alice", "bob"), denied=("carol", "dave")),
    *rows("GET", "/v1/conversations/{group}/messages", ok=("alice", "bob", "carol"), denied=("dave",)),
    *unknown("GET", "/v1/conversations/{unknown}/messages"),
    # marking read (advance-only: a member's row succeeds again and changes nobody's rights)
    *rows("POST", "/v1/conversations/{ab}/read", json={"up_to": "{msg_ab}"}, ok=("alice", "bob"), denied=("carol", "dave")),
    *rows("POST", "/v1/conversations/{group}/read", json={"up_to": "{msg_group}"}, ok=("alice", "bob", "carol"),
          denied=("dave",)),
    *unknown("POST", "/v1/conversations/{unknown}/read", json={"up_to": "{msg_ab}"}),
    # a message of another conversation is as unknown as one that does not exist
    *[Row(who, "POST", "/v1/conversations/{ab}/read", 404, json={"up_to": "{msg_group}"}) for who in ("alice", "bob")],
    # leaving: a group's members only (rows that succeed would change rights, see test_leave_http.py)
    *rows("DELETE", "/v1/conversations/{group}/members/me", denied=("dave",)),
    *rows("DELETE", "/v1/conversations/{ab}/members/me", denied=("carol", "dave")),
    *[Row(who, "DELETE", "/v1/conversations/{ab}/members/me", 409) for who in ("alice", "bob")],  # private
    *unknown("DELETE", "/v1/conversations/{unknown}/members/me"),
    # single messages
    *rows("GET", "/v1/messages/{msg_ab}", ok=("alice", "bob"), denied=("carol", "dave")),
    *rows("GET", "/v1/messages/{msg_group}", ok=("alice", "bob", "carol"), denied=("dave",)),
    *unknown("GET", "/v1/messages/{unknown}"),
    # sending into a conversation
    *rows("POST", "/v1/messages", json=send_text("{ab}"), ok=("alice", "bob"), denied=("carol", "dave")),
    *rows("POST", "/v1/messages", json=send_text("{group}"), ok=("alice", "bob", "carol"), denied=("dave",)),
    *unknown("POST", "/v1/messages", json=send_text("{unknown}")),
    # sending a file: the uploader, or a member of a conversation it was sent into (forwarding)
    *rows("POST", "/v1/messages", json=send_file("{shared}", "{ab}"), ok=("alice", "bob")),
    *rows("POST", "/v1/messages", json=send_file("{shared}", "{group}"), denied=("carol",)),
    *rows("POST", "/v1/messages", json=send_file("{shared}", "{cd}"), denied=("carol", "dave")),
    *rows("POST", "/v1/messages", json=send_file("{forwarded}", "{bd}"), ok=("bob", "dave")),
    *rows("POST", "/v1/messages", json=send_file("{private}", "{ab}"), denied=("bob",)),
    *rows("POST", "/v1/messages", json=send_file("{private}", "{group}"), denied=("bob", "carol")),
    *rows("POST", "/v1/messages", json=send_file("{pending}", "{bd}"), denied=("bob", "dave")),
    Row("alice", "POST", "/v1/messages", 400, json=send_file("{pending}", "{ab}")),  # hers, but not completed
    *[Row(who, "POST", "/v1/messages", 404, json=send_file("{unknown}", conv))
      for who, conv in (("alice", "{ab}"), ("bob", "{ab}"), ("carol", "{group}"), ("dave", "{cd}"))],
    # upload status
    *rows("GET", "/v1/files/{shared}", ok=("alice", "bob"), denied=("carol", "dave")),
    *rows("GET", "/v1/files/{forwarded}", ok=("alice", "bob", "dave"), denied=("carol",)),
    *rows("GET", "/v1/files/{private}", ok=("alice",), denied=("bob", "carol", "dave")),
    *rows("GET", "/v1/files/{pending}", ok=("alice",), denied=("bob", "carol", "dave")),
    *unknown("GET", "/v1/files/{unknown}"),
    # download
    *rows("GET", "/v1/files/{shared}/content", ok=("alice", "bob"), denied=("carol", "dave")),
    *rows("GET", "/v1/files/{forwarded}/content", ok=("alice", "bob", "dave"), denied=("carol",)),
    *rows("GET", "/v1/files/{private}/content", ok=("alice",), denied=("bob", "carol", "dave")),
    *rows("GET", "/v1/files/{pending}/content", denied=("bob", "carol", "dave")),
    Row("alice", "GET", "/v1/files/{pending}/content", 409),  # hers, but not completed
    *unknown("GET", "/v1/files/{unknown}/content"),
    # sending chunks: the uploader only, never a recipient
    *rows("PATCH", "/v1/files/upload", params={"file_id": "{pending}", "chunk_id": "0"}, ok=("alice",),
          denied=("bob", "carol", "dave"), **CHUNK),
    *rows("PATCH", "/v1/files/upload", params={"file_id": "{shared}", "chunk_id": "0"}, denied=("bob", "carol", "dave"), **CHUNK),
    Row("alice", "PATCH", "/v1/files/upload", 409, params={"file_id": "{shared}", "chunk_id": "0"}, **CHUNK),  # completed
    *unknown("PATCH", "/v1/files/upload", params={"file_id": "{unknown}", "chunk_id": "0"}, **CHUNK),
    # completing: the uploader only, never a recipient
    *rows("POST", "/v1/files/complete", json=complete("{filled}"), denied=("bob", "carol", "dave")),
    *rows("POST", "/v1/files/complete", json=complete("{shared}"), denied=("bob", "carol", "dave")),
    *unknown("POST", "/v1/files/complete", json=complete("{unknown}")),
    # last, so that the denials above saw it still open (they would be 403 after anyway)
    Row("alice", "POST", "/v1/files/complete", OK, json=complete("{filled}")),
]


@dataclass
class Scene:
    ids: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def fill(self, value: Any, who: str) -> Any:
        if isinstance(value, dict):
            return {key: self.fill(item, who) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill(item, who) for item in value]
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda match: self.resolve(match.group(1), who), value)
        return value

    def resolve(self, key: str, who: str) -> str:
        if key in ("new", "unknown"):
            return str(uuid.uuid4())
        if key == "me":
            return self.users[who]
        return self.ids[key]


@pytest_asyncio.fixture(scope="module")
async def scene(deployment) -> Scene:
    client = deployment.client
    result = Scene()
    for name in USERS:
        result.users[name], result.headers[name] = await deployment.user()
    users, headers = result.users, result.headers
    alice = headers["alice"]
    ids = result.ids
    ids["ab"] = await conversation(deployment, alice, [users["alice"], users["bob"]])
    ids["group"] = await conversation(deployment, alice, [users["alice"], users["bob"], users["carol"]], "group")
    ids["bd"] = await conversation(deployment, headers["bob"], [users["bob"], users["dave"]])
    ids["cd"] = await conversation(deployment, headers["carol"], [users["carol"], users["dave"]])
    for key, conv in (("msg_ab", "ab"), ("msg_group", "group")):
        body = text_message(ids[conv], users["alice"])
        assert (await client.post("/v1/messages", json=body, headers=alice)).status_code == 200
        ids[key] = body["message_id"]
    ids["shared"] = await upload_file(client, alice, b"s" * FILE_SIZE, filename="shared.txt")
    ids["forwarded"] = await upload_file(client, alice, b"w" * FILE_SIZE, filename="forwarded.txt")
    ids["private"] = await upload_file(client, alice, b"p" * FILE_SIZE, filename="private.txt")
    ids["filled"] = await upload_file(client, alice, FILLED_BYTES, filename="filled.bin", complete=False)
    started = await client.post("/v1/files/initiate", json={"filename": "empty.bin", "file_size": FILE_SIZE}, headers=alice)
    ids["pending"] = started.json()["file_id"]  # no chunk at all
    for who, file_key, conv in (("alice", "shared", "ab"), ("alice", "forwarded", "ab"), ("bob", "forwarded", "bd")):
        body = {**text_message(ids[conv], users[who]), "payload": {"type": "file", "file_id": ids[file_key]}}
        response = await client.post("/v1/messages", json=body, headers=headers[who])
        assert response.status_code == 200, response.text
    return result


@pytest.mark.parametrize("row", MATRIX, ids=str)
async def test_access(deployment, scene, row: Row):
    request: dict[str, Any] = {"headers": dict(scene.headers[row.who])}
    if row.json is not None:
        request["json"] = scene.fill(row.json, row.who)
    if row.params is not None:
        request["params"] = scene.fill(row.params, row.who)
    if row.content is not None:
        request["content"] = row.content
        request["headers"]["Content-Type"] = "application/octet-stream"
    response = await deployment.client.request(row.method, scene.fill(row.path, row.who), **request)
    if row.expect == OK:
        assert response.status_code in (200, 201, 307), f"{row}: {response.status_code} {response.text}"
    else:
        assert_error(response, row.expect)


async def test_malformed_ids_are_404_in_paths_and_400_in_queries_and_bodies(deployment, scene):
    client, alice = deployment.client, scene.headers["alice"]
    for path in ("/v1/conversations/not-a-uuid", "/v1/conversations/123/messages", "/v1/messages/x", "/v1/files/..%2F..",
                 "/v1/files/nope/content"):
        assert_error(await client.get(path, headers=alice), 404)
    assert_error(await client.patch("/v1/files/upload", params={"file_id": "nope", "chunk_id": "0"}, content=b"x",
                                    headers={**alice, "Content-Type": "application/octet-stream"}), 400)
    assert_error(await client.post("/v1/files/complete", json={"file_id": "nope", "checksum": "0" * 64}, headers=alice), 400)
    body = {**text_message(scene.ids["ab"], scene.users["alice"]), "conversation_id": "nope"}
    assert_error(await client.post("/v1/messages", json=body, headers=alice), 400)


async def test_an_outsider_cannot_start_a_conversation_for_others(deployment, scene):
    members = [scene.users["alice"], scene.users["bob"]]
    response = await deployment.client.post("/v1/conversations", json={"type": "private", "members": members},
                                            headers=scene.headers["carol"])
    assert_error(response, 403)
