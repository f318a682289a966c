"""The server below the app, over raw sockets, against a real `chat4all serve` with the limits a
deployment gets by default: slow clients are cut off in time (and a slow upload that keeps moving
is not), a process holds a bounded number of connections, and what the HTTP parser refuses is
answered in the app's JSON error shape with the security headers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from chat4all.entrypoints.settings import load_settings
from tests.integration.http.profiles import FAST_ARGON2, Processes
from tests.ports import low_port

DEFAULTS = load_settings({}).http
SLACK = 2.0  # the timer's own latency plus a loaded machine's


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[int]:
    workdir = tmp_path_factory.mktemp("limits")
    processes = Processes({**FAST_ARGON2, "CHAT4ALL_DATA_DIR": str(workdir / "data")}, workdir)
    port = low_port()
    log = processes.start("api", "serve", "--port", str(port))
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield port
    finally:
        processes.stop()


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@asynccontextmanager
async def raw(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def until_closed(reader: asyncio.StreamReader, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    received = await asyncio.wait_for(reader.read(), timeout=limit)
    return received, time.monotonic() - started


async def trickle(writer: asyncio.StreamWriter, pieces: list[bytes], every: float) -> None:
    for piece in pieces:
        await asyncio.sleep(every)
        if writer.is_closing():
            return
        try:
            writer.write(piece)
            await writer.drain()
        except ConnectionError:
            return


def parse(answer: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_json_refusal(answer: bytes, status: int, code: str) -> None:
    got, headers, body = parse(answer)
    assert got == status, answer
    assert body["error_code"] == code and body["detail"], body
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["connection"] == "close"
    assert "server" not in headers  # no product or version named


async def headers_a_byte_at_a_time(port: int) -> tuple[bytes, float]:
    async with raw(port) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sender = asyncio.create_task(trickle(writer, [b"X"] * 100, every=2.0))
        try:
            return await until_closed(reader, DEFAULTS.header_timeout * 4)
        finally:
            sender.cancel()


async def silent_connection(port: int) -> tuple[bytes, float]:
    async with raw(port) as (reader, _):
        return await until_closed(reader, DEFAULTS.header_timeout * 4)


async def body_that_stops(port: int) -> tuple[bytes, float]:
    async with raw(port) as (reader, writer):
        writer.write(b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"username\": ")
        await writer.drain()
        return await until_closed(reader, DEFAULTS.body_timeout * 3)


async def body_that_keeps_moving(port: int) -> tuple[bytes, float]:
    """A body sent in pieces, a pause well under the body timeout between them, for longer in all
    than the body timeout: a slow upload that makes progress is not cut off."""
    body = b'{"username": "slow", "password": "slow-but-steady"}'
    size = -(-len(body) // 5)
    pieces = [body[start : start + size] for start in range(0, len(body), size)]
    pause = DEFAULTS.body_timeout / 4
    assert len(pieces) * pause > DEFAULTS.body_timeout * 1.2
    async with raw(port) as (reader, writer):
        writer.write(b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        sender = asyncio.create_task(trickle(writer, pieces, every=pause))
        received, took = await until_closed(reader, len(pieces) * pause + DEFAULTS.body_timeout)
        await sender
        return received, took


async def idle_after_an_answer(port: int) -> tuple[bytes, float]:
    async with raw(port) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        answer = await reader.readuntil(b'{"status":"ok"}')
        assert answer.startswith(b"HTTP/1.1 200"), answer
        return await until_closed(reader, DEFAULTS.keep_alive_timeout * 4)


async def test_slow_clients_are_cut_off_at_the_default_limits_and_slow_progress_is_not(server):
    # All at once, so the test lasts as long as the slowest of them.
    headers, silent, stalled, moving, idle = await asyncio.gather(
        headers_a_byte_at_a_time(server), silent_connection(server), body_that_stops(server),
        body_that_keeps_moving(server), idle_after_an_answer(server),
    )
    answer, took = headers
    assert DEFAULTS.header_timeout - SLACK < took < DEFAULTS.header_timeout + SLACK, took
    assert_json_refusal(answer, 408, "request_timeout")
    answer, took = silent
    assert answer == b"" and took < DEFAULTS.header_timeout + SLACK, took  # nothing was asked, nothing to answer
    answer, took = stalled
    assert DEFAULTS.body_timeout - SLACK < took < DEFAULTS.body_timeout + SLACK, took
    assert_json_refusal(answer, 408, "request_timeout")
    answer, took = moving
    status, _, body = parse(answer)
    assert status == 401 and body["error_code"] != "request_timeout", answer  # the app judged the whole body
    assert took > DEFAULTS.body_timeout * 1.2
    answer, took = idle
    assert answer == b"" and DEFAULTS.keep_alive_timeout - SLACK < took < DEFAULTS.keep_alive_timeout + SLACK, took


async def test_a_process_holds_at_most_the_default_number_of_connections(server):
    held = []
    try:
        for _ in range(DEFAULTS.max_connections):
            held.append(await asyncio.open_connection("127.0.0.1", server))
        reader, writer = held[-1]
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # the last one allowed still works
        assert (await reader.readuntil(b'{"status":"ok"}')).startswith(b"HTTP/1.1 200")
        async with raw(server) as (reader, _):
            answer, took = await until_closed(reader, 10)
        assert_json_refusal(answer, 503, "too_many_connections")
        assert parse(answer)[1]["retry-after"] == "1"
    finally:
        for _, writer in held:
            writer.close()
    await asyncio.sleep(0.5)
    async with raw(server) as (reader, writer):  # room again once they are gone
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert (await until_closed(reader, 10))[0].startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "request_bytes, status, code",
    [
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n", 400, "malformed_request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "malformed_request"),  # TLS to the plain-HTTP port
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", 400, "malformed_request"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, "headers_too_large"),
    ],
    ids=["header-without-colon", "tls-handshake", "two-lengths", "huge-header"],
)
async def test_what_the_http_parser_refuses_is_answered_as_json_with_the_security_headers(server, request_bytes, status, code):
    async with raw(server) as (reader, writer):
        writer.write(request_bytes)
        await writer.drain()
        answer, _ = await until_closed(reader, 10)
    assert_json_refusal(answer, status, code)
    assert b"uvicorn" not in answer.lower() and b"traceback" not in answer.lower()
