"""Schema-driven fuzzing of the HTTP API with schemathesis, from the app's own OpenAPI document.

Every operation is fed schema-valid (positive) and schema-violating (negative) requests with a
fixed seed and a bounded number of examples, authenticated as a real user, against both profiles:
embedded in-process (ASGI) and distributed (`chat4all serve` + `chat4all worker` on PostgreSQL,
Kafka and S3). Each response must pass:

- not_a_server_error: no 5xx, whatever the input;
- status_code_conformance: the status is documented for the operation;
- response_schema_conformance / content_type_conformance / response_headers_conformance: the
  body, media type and headers are the documented ones (errors included: ErrorBody);
- negative_data_rejection: schema-violating input is refused;
- ignored_auth: protected operations refuse requests without a valid token.

positive_data_acceptance is left out on purpose: some schema-valid requests are refused by rules
a schema cannot state (members must exist, a private conversation has exactly two members, a
chunk must be exactly the announced size...).

A second round replays the id-taking operations with ids of real resources (a conversation, a
message, a completed and a pending upload), so success bodies are validated too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.http.profiles import FAST_ARGON2, Processes, discard_distributed, distributed_env
from tests.ports import low_port

pytestmark = pytest.mark.services

PASSWORD = "fuzzing-pass-1"
SEED = 20241202
EXAMPLES = {"embedded": 20, "distributed": 8}
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
# Every fuzzed request comes from one address; a high per-address limit keeps the fuzzer's own logins
# possible, while repeated generated usernames still meet the per-(username, address) limit (and its
# documented 429).
SETTINGS = {**FAST_ARGON2, "CHAT4ALL_LOGIN_MAX_FAILURES_PER_ADDRESS": "100000"}

# Every operation of the document (a test checks the list is complete, so none is left unfuzzed).
OPERATIONS = [
    "GET /health",
    "GET /ready",
    "POST /auth/token",
    "POST /auth/logout",
    "GET /v1/users",
    "GET /v1/users/me",
    "GET /v1/conversations",
    "POST /v1/conversations",
    "GET /v1/conversations/{conversation_id}",
    "GET /v1/conversations/{conversation_id}/messages",
    "DELETE /v1/conversations/{conversation_id}/members/me",
    "POST /v1/messages",
    "GET /v1/messages/{message_id}",
    "POST /v1/files/initiate",
    "PATCH /v1/files/upload",
    "POST /v1/files/complete",
    "GET /v1/files/{file_id}",
    "GET /v1/files/{file_id}/content",
    "POST /v1/conversations/{conversation_id}/read",
    "GET /v1/events",
    "GET /v1/events/stream",
]
# An event stream that is accepted never ends (that is what it is for; test_live_events_http.py
# reads them): only the requests it must refuse are fuzzed.
STREAMS = {"GET /v1/events/stream"}
# A long poll waits up to `timeout` seconds when there is nothing new: schema-valid ones do not wait.
FIXED = {"GET /v1/events": {"query": {"timeout": 0}}}


class BaseUrlSession(requests.Session):
    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        return super().request(method, urljoin(self.base_url, url), *args, **kwargs)


@dataclass
class Target:
    profile: str
    schema: Any
    session: requests.Session
    token: str = ""
    ids: dict[str, str] = field(default_factory=dict)

    def login(self) -> str:
        response = self.session.post("/auth/token", json={"username": "fuzzer", "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _embedded(workdir: Path) -> Iterator[Target]:
    from chat4all.entrypoints.bootstrap import build
    from chat4all.entrypoints.cli import migrate
    from chat4all.entrypoints.settings import load_settings
    from chat4all.entrypoints.web import web_app

    # schemathesis' ASGI client sends `Host: testserver`.
    settings_ = load_settings(
        {**SETTINGS, "CHAT4ALL_DATA_DIR": str(workdir / "data"), "CHAT4ALL_CHUNK_SIZE": "1024", "CHAT4ALL_ALLOWED_HOSTS": "testserver"}
    )

    async def prepare() -> None:
        await migrate(settings_)
        hub = build("embedded", settings_)
        try:
            for name in ("fuzzer", "fuzz_friend"):
                await hub.register_user.execute(name, PASSWORD)
        finally:
            await hub.stop()

    asyncio.run(prepare())
    app = web_app(build("embedded", settings_), settings_)  # its lifespan runs on schemathesis' ASGI event loop
    schema = schemathesis.openapi.from_asgi("/docs/openapi.json", app)
    with asgi.get_client(app) as session:
        yield Target("embedded", schema, session)
    asgi.shutdown_lifespans()


def _distributed(workdir: Path) -> Iterator[Target]:
    env = {**distributed_env("fuzz"), **SETTINGS}
    processes = Processes(env, workdir)
    processes.cli("migrate")
    for name in ("fuzzer", "fuzz_friend"):
        processes.cli("users", "add", name, "--password", PASSWORD)
    port = low_port()
    logs = [processes.start("api", "serve", "--port", str(port)), processes.start("worker", "worker")]
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, logs)
        schema = schemathesis.openapi.from_url(f"{base_url}/docs/openapi.json")
        with BaseUrlSession(base_url) as session:
            yield Target("distributed", schema, session)
    finally:
        processes.stop()
        asyncio.run(discard_distributed(env))


def _wait_ready(base_url: str, logs: list[Path], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError("service never became ready:\n" + "\n".join(log.read_text()[-3000:] for log in logs))


def _create_resources(target: Target) -> None:
    """A conversation with a message and a shared file, plus a pending upload: ids to fuzz with."""
    session, auth = target.session, target.auth
    me = session.get("/v1/users/me", headers=auth).json()["user_id"]
    friend = session.get("/v1/users", params={"username": "fuzz_friend"}, headers=auth).json()["users"][0]["user_id"]
    conversation = session.post("/v1/conversations", json={"type": "private", "members": [me, friend]}, headers=auth)
    conversation_id = conversation.json()["conversation_id"]
    message = {
        "message_id": str(uuid.uuid4()), "conversation_id": conversation_id, "from": me,
        "channels": ["whatsapp"], "payload": {"type": "text", "text": "fuzz me"},
    }
    assert session.post("/v1/messages", json=message, headers=auth).status_code == 200
    data = os.urandom(100)
    started = session.post("/v1/files/initiate", json={"filename": "f.bin", "file_size": len(data)}, headers=auth).json()
    chunk = session.patch(
        "/v1/files/upload", params={"file_id": started["file_id"], "chunk_id": 0}, data=data,
        headers={**auth, "Content-Type": "application/octet-stream"},
    )
    assert chunk.status_code == 200, chunk.text
    done = session.post(
        "/v1/files/complete", json={"file_id": started["file_id"], "checksum": hashlib.sha256(data).hexdigest()}, headers=auth
    )
    assert done.status_code == 200, done.text
    shared = {**message, "message_id": str(uuid.uuid4()), "payload": {"type": "file", "file_id": started["file_id"]}}
    assert session.post("/v1/messages", json=shared, headers=auth).status_code == 200
    pending = session.post("/v1/files/initiate", json={"filename": "p.bin", "file_size": 5000}, headers=auth).json()
    target.ids = {
        "conversation_id": conversation_id,
        "message_id": message["message_id"],
        "file_id": started["file_id"],
        "pending_file_id": pending["file_id"],
    }


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def target(request, tmp_path_factory) -> Iterator[Target]:
    factory = _embedded if request.param == "embedded" else _distributed
    for running in factory(tmp_path_factory.mktemp(f"fuzz-{request.param}")):
        # Unknown query parameters are ignored, as most HTTP APIs do; that is not a finding.
        running.schema.config.generation.update(allow_extra_parameters=False)
        running.token = running.login()
        _create_resources(running)
        yield running


def fuzz(target: Target, label: str, mode: schemathesis.GenerationMode, **fixed: Any) -> None:
    operation = target.schema.find_operation_by_label(label)
    assert operation is not None, label

    if mode is schemathesis.GenerationMode.POSITIVE:
        fixed = {**FIXED.get(label, {}), **fixed}

    @seed(SEED)
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=EXAMPLES[target.profile],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        # Logging out revokes the token, so that operation gets a token of its own each time.
        token = target.login() if label == "POST /auth/logout" else target.token
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            excluded_checks=[positive_data_acceptance],
            allow_redirects=False,
            timeout=30,
        )

    try:
        run()
    except Unsatisfiable:
        # Negative mode has nothing to break in an operation without parameters or body.
        assert mode is schemathesis.GenerationMode.NEGATIVE and not operation.body and not list(operation.iter_parameters())


def test_operations_added_since_this_list_was_written_are_fuzzed_too(target):
    documented = {f"{method.upper()} {path}" for path, item in target.schema.raw_schema["paths"].items() for method in item}
    assert set(OPERATIONS) <= documented
    for label in sorted(documented - set(OPERATIONS)):
        for mode in MODES:
            fuzz(target, label, mode)


@pytest.mark.parametrize(
    "label, mode",
    [(label, mode) for label in OPERATIONS for mode in MODES if not (label in STREAMS and mode is schemathesis.GenerationMode.POSITIVE)],
    ids=lambda value: value if isinstance(value, str) else value.value,
)
def test_fuzz_operation(target, label, mode):
    fuzz(target, label, mode)


@pytest.mark.parametrize(
    "label, fixed",
    [
        ("GET /v1/conversations/{conversation_id}", {"path_parameters": {"conversation_id": "conversation_id"}}),
        ("GET /v1/conversations/{conversation_id}/messages", {"path_parameters": {"conversation_id": "conversation_id"}}),
        ("GET /v1/messages/{message_id}", {"path_parameters": {"message_id": "message_id"}}),
        ("POST /v1/conversations/{conversation_id}/read", {"path_parameters": {"conversation_id": "conversation_id"}}),
        ("GET /v1/files/{file_id}", {"path_parameters": {"file_id": "file_id"}}),
        ("GET /v1/files/{file_id}", {"path_parameters": {"file_id": "pending_file_id"}}),
        ("GET /v1/files/{file_id}/content", {"path_parameters": {"file_id": "file_id"}}),
        ("PATCH /v1/files/upload", {"query": {"file_id": "pending_file_id"}}),
    ],
    ids=lambda value: value if isinstance(value, str) else next(iter(next(iter(value.values())).values())),
)
def test_fuzz_operation_on_real_resources(target, label, fixed):
    resolved = {part: {name: target.ids[key] for name, key in values.items()} for part, values in fixed.items()}
    fuzz(target, label, schemathesis.GenerationMode.POSITIVE, **resolved)


def test_fuzzing_left_the_api_serving(target):
    assert target.session.get("/health").status_code == 200
    assert target.session.get("/v1/users/me", headers=target.auth).status_code == 200

