"""Input that no client should send is refused as invalid input, never stored raw or crashed on."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import contextmanager

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat4all.application.login_throttle import pair_key, user_key
from chat4all.application.uploads import CONTENT_TYPE_PATTERN
from chat4all.domain.conversations import ConversationMetadata
from chat4all.domain.errors import InvalidInput, NotAuthenticated
from chat4all.domain.messages import TextPayload
from chat4all.domain.uploads import validate_filename

PASSWORD = "correct horse battery"


@pytest.mark.parametrize(
    "name",
    ["invoice\u202egpj.exe", "a\u202ab", "a\u202db", "x\u2066y", "x\u2069y", "../../x", "..\\x", "a\x00b", "a\x85b"],
)
def test_filenames_that_could_be_paths_or_could_disguise_themselves_are_refused(name):
    with pytest.raises(InvalidInput) as raised:
        validate_filename(name)
    assert "filename" in raised.value.field_errors


@pytest.mark.parametrize("name", ["Relatório final — ünïcødé 📎 (v2).pdf", "; rm -rf ~ $(x) 'q' \"q\" <b>.txt", "名前.txt", "..."])
def test_odd_but_harmless_filenames_are_accepted(name):
    assert validate_filename(name) == name


@pytest.mark.parametrize(
    "value, ok",
    [
        ("application/pdf", True),
        ("text/plain; charset=utf-8", True),
        ("text/plain;x=\x00", False),
        ("text/plain\r\nX-Injected: 1", False),
        ("text/plain; a=\u00e9", False),
        ("text", False),
    ],
)
def test_content_types_are_plain_ascii_type_subtype_and_parameters(value, ok):
    assert bool(CONTENT_TYPE_PATTERN.fullmatch(value)) is ok


def test_message_text_may_not_hold_nul_but_may_hold_newlines_and_tabs():
    assert TextPayload("line one\n\tline two").text
    with pytest.raises(InvalidInput):
        TextPayload("a\x00b")


def test_conversation_names_are_single_line_and_descriptions_nul_free():
    ConversationMetadata("Team", "first line\nsecond line")
    for bad in ({"name": "a\nb"}, {"name": "a\x00"}, {"description": "a\x00"}):
        with pytest.raises(InvalidInput):
            ConversationMetadata(**bad)


def test_throttling_keys_are_printable_ascii_whatever_the_username():
    assert user_key("alice") == "user:alice"
    for hostile in ("a\x00b", "é" * 500, "\U0001f600" * 50, "x" * 10_000):
        key = user_key(hostile)
        assert key.isascii() and key.isprintable() and len(key) <= 128


async def test_login_with_an_impossible_username_is_an_ordinary_failure_without_a_lookup(hub):
    await hub.user("alice")
    with pytest.raises(NotAuthenticated):
        await hub.authenticate.execute("al\x00ice", PASSWORD, "192.0.2.1")
    keys = {key for key, _ in hub.store.login_failures}
    assert keys == {"user:al\\x00ice", "addr:192.0.2.1", pair_key("user:al\\x00ice", "addr:192.0.2.1")}
    assert all(key.isascii() and key.isprintable() and len(key) <= 128 for key in keys)


async def test_searching_for_an_impossible_username_finds_nobody(hub):
    await hub.user("alice")
    assert await hub.find_users.execute(username="ali\x00ce") == []
    assert await hub.find_users.execute(username="a" * 1000) == []
    assert [user.username for user in await hub.find_users.execute(username="alice")] == ["alice"]


# --- raw bytes at the HTTP edge ------------------------------------------------------------------
# The app over the in-memory adapters, fed bytes rather than strings: invalid UTF-8 (stray, overlong,
# surrogate, truncated), broken JSON, broken multipart, and valid bodies with bytes flipped, cut or
# spliced in. Whatever arrives, the answer is never a 5xx, always a JSON error body, and nothing is
# logged above a warning (an unexpected error used to log a 30-line traceback per request).

HOSTILE_SEQUENCES = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\x00", b'"', b"\\", b"{"]


class EdgeScene:
    """One app and one event loop for every example: the app holds no state that an example could spoil."""

    def __init__(self, tmp_path) -> None:
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
        settings = load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path), "CHAT4ALL_CHUNK_SIZE": "1024"})
        self.hub = build(
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
        self.app = web_app(self.hub, settings, manage_lifecycle=False)
        self.loop = asyncio.new_event_loop()
        self.bodies = self.loop.run_until_complete(self._valid_bodies())

    async def request(self, method: str, path: str, body: bytes, content_type: str, auth: bool = True):
        headers = {"Content-Type": content_type, **(self.auth if auth else {})}
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.request(method, path, content=body, headers=headers)

    async def _valid_bodies(self) -> list[tuple[str, str, bytes, str]]:
        """(method, path, a body the route accepts, content type), for every route that reads a body."""
        alice = await self.hub.register_user.execute("alice", PASSWORD)
        bob = await self.hub.register_user.execute("bob", PASSWORD)
        login = json.dumps({"username": "alice", "password": PASSWORD}).encode()
        token = (await self.request("POST", "/auth/token", login, "application/json", auth=False)).json()
        self.auth = {"Authorization": f"Bearer {token['access_token']}"}
        start = json.dumps({"type": "private", "members": [str(alice.id), str(bob.id)]}).encode()
        conversation = (await self.request("POST", "/v1/conversations", start, "application/json")).json()
        initiate = json.dumps({"filename": "a.bin", "file_size": 4}).encode()
        upload = (await self.request("POST", "/v1/files/initiate", initiate, "application/json")).json()
        message = {
            "message_id": "5f0c6a4e-0000-4000-8000-000000000001", "conversation_id": conversation["conversation_id"],
            "from": str(alice.id), "channels": ["whatsapp"], "payload": {"type": "text", "text": "olá"},
        }
        boundary = "b0undary"
        multipart = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\nabcd\r\n--{boundary}--\r\n"
        ).encode()
        return [
            ("POST", "/auth/token", login, "application/json"),
            ("POST", "/v1/conversations", start, "application/json"),
            ("POST", "/v1/messages", json.dumps(message, ensure_ascii=False).encode(), "application/json"),
            ("POST", "/v1/files/initiate", initiate, "application/json"),
            ("POST", "/v1/files/complete", json.dumps({"file_id": upload["file_id"], "checksum": "0" * 64}).encode(), "application/json"),
            ("PATCH", f"/v1/files/upload?file_id={upload['file_id']}&chunk_id=0", multipart, f"multipart/form-data; boundary={boundary}"),
        ]

    def answer(self, route: int, body: bytes) -> httpx.Response:
        method, path, _, content_type = self.bodies[route]
        return self.loop.run_until_complete(self.request(method, path, body, content_type))


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    scene = EdgeScene(tmp_path_factory.mktemp("edge"))
    yield scene
    scene.loop.close()


class LoudLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def assert_refused_cleanly(response: httpx.Response, loud: LoudLogs) -> None:
    assert response.status_code < 500, response.text
    assert not loud.records, [record.getMessage() for record in loud.records]
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["error_code"], str) and body["error_code"]
        assert isinstance(body["detail"], str) and body["detail"]


@contextmanager
def loud_logs():
    handler = LoudLogs()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.mark.parametrize("sequence", HOSTILE_SEQUENCES[:5])
def test_invalid_utf8_inside_a_json_string_is_a_400_invalid_body_on_every_json_route(edge, sequence):
    for route, (_, path, valid, content_type) in enumerate(edge.bodies):
        if content_type != "application/json":
            continue
        inside_first_string = valid.index(b': "') + 3
        hostile = valid[:inside_first_string] + sequence + valid[inside_first_string:]
        with loud_logs() as loud:
            response = edge.answer(route, hostile)
        assert_refused_cleanly(response, loud)
        assert response.status_code == 400 and response.json()["error_code"] == "invalid_body", (path, response.text)


def test_a_multipart_form_field_that_is_not_utf8_is_a_400_invalid_body(edge):
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
        + b"\xffabcd\r\n"
        + f"--{boundary}--\r\n".encode()
    )
    with loud_logs() as loud:
        response = edge.answer(5, body)
    assert_refused_cleanly(response, loud)
    assert response.status_code == 400 and response.json()["error_code"] == "invalid_body", response.text


@st.composite
def mutated(draw, valid: bytes) -> bytes:
    """A valid body with one to three edits: a byte replaced, bytes spliced in, a cut."""
    body = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        edit = draw(st.sampled_from(["replace", "insert", "cut"]))
        if edit == "replace" and at < len(body):
            body[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            body[at:at] = draw(st.sampled_from(HOSTILE_SEQUENCES) | st.binary(min_size=1, max_size=4))
        else:
            del body[at:]
    return bytes(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_valid_bodies_with_bytes_flipped_cut_or_spliced_in_never_cause_a_5xx(edge, data):
    route = data.draw(st.integers(0, 5))
    body = data.draw(mutated(edge.bodies[route][2]))
    with loud_logs() as loud:
        assert_refused_cleanly(edge.answer(route, body), loud)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.integers(0, 5), body=st.binary(max_size=512))
def test_arbitrary_bytes_as_a_body_never_cause_a_5xx(edge, route, body):
    with loud_logs() as loud:
        assert_refused_cleanly(edge.answer(route, body), loud)
