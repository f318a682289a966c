"""How `chat4all watch` resumes: against a scripted stand-in for the events API (long-poll pages
and Server-Sent Events streams, dropped where the script says), which events it prints, once
each, in order, after reconnecting."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chat4all.client.credentials import Credentials
from chat4all.client.errors import ServerError, SessionExpired, Unreachable
from chat4all.client.event_lines import EventLines, printable
from chat4all.client.follow import Follow
from chat4all.client.output import Output
from chat4all.client.sse import Comment, StreamEvent, read_stream
from chat4all.client.watch import Watcher

CHAT, OTHER = "c-1", "c-2"
DROPPED = Unreachable("cannot reach http://hub.test: peer closed connection")


def event(seq: int, conversation: str = CHAT) -> dict[str, Any]:
    return {"seq": seq, "type": "message.created", "at": "2026-12-07T18:00:00Z", "data": {"conversation_id": conversation}}


def typing(conversation: str = CHAT) -> dict[str, Any]:
    return {"type": "typing", "at": "2026-12-07T18:00:00Z", "data": {"conversation_id": conversation, "user_id": "u-2"}}


def sse(envelope: dict[str, Any], kind: str | None = None) -> list[str]:
    lines = [f"event: {kind or envelope['type']}", f"data: {json.dumps(envelope)}", ""]
    return ([f"id: {envelope['seq']}"] if "seq" in envelope else []) + lines


CONNECTED = [": connected", ""]


class EventsApi:
    """Answers each long-poll and opens each stream from its script, in order; a script's
    exception is raised where it stands (a stream drops mid-way), and when the scripts run out
    the watch is stopped as Ctrl-C stops it."""

    def __init__(self, polls: list[Any], streams: list[list[Any]]):
        self.polls, self.streams = polls, streams
        self.requests: list[tuple[str, Any]] = []

    def call(self, method: str, path: str, params: dict[str, Any]) -> Any:
        assert (method, path) == ("GET", "/v1/events") and params["timeout"] == 0
        self.requests.append(("poll", params.get("since")))
        if not self.polls:
            raise KeyboardInterrupt
        answer = self.polls.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @contextmanager
    def fetch(self, url: str, params: dict[str, Any], timeout: Any) -> Iterator[Any]:
        assert url == "/v1/events/stream"
        self.requests.append(("stream", params.get("since")))
        if not self.streams:
            raise KeyboardInterrupt
        script = self.streams.pop(0)
        if isinstance(script, Exception):
            raise script
        yield Stream(script)


class Stream:
    def __init__(self, script: list[Any]):
        self.script = script

    def iter_lines(self) -> Iterator[str]:
        for line in self.script:
            if isinstance(line, Exception):
                raise line
            yield line


class Shown:
    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []

    def show(self, envelope: dict[str, Any]) -> None:
        self.envelopes.append(envelope)


def watched(api: EventsApi, follow: Follow | None = None) -> tuple[list[dict[str, Any]], str, list[float]]:
    """Runs a watch until the scripts run out: what it printed, its notices, and its pauses."""
    shown, notices, pauses = Shown(), io.StringIO(), []
    output = Output(out=io.StringIO(), err=notices)
    with pytest.raises(KeyboardInterrupt):
        Watcher(api, follow or Follow(), shown, output, sleep=pauses.append).run("bob")
    return shown.envelopes, notices.getvalue(), pauses


def page(events: list[dict[str, Any]], next_seq: int) -> dict[str, Any]:
    return {"events": events, "next": next_seq}


def test_the_stream_is_read_as_events_ids_and_comments() -> None:
    lines = [": connected", "", "id: 7", "event: message.created", "data: {\"a\":", "data: 1}", "",
             "event: typing", "data:{}", "", ": keep-alive", "retry: 10", "", "data: x", ""]
    assert list(read_stream(lines)) == [
        Comment("connected"),
        StreamEvent("message.created", '{"a":\n1}', "7"),
        StreamEvent("typing", "{}", None),
        Comment("keep-alive"),
        StreamEvent("message", "x", None),
    ]


def test_each_stored_event_is_taken_once_and_typing_notices_always() -> None:
    follow = Follow()
    assert [follow.take(event(seq)) for seq in (3, 4, 4, 2, 5)] == [True, True, False, False, True]
    assert follow.cursor == 5
    assert follow.take(typing()) and follow.take(typing()) and follow.cursor == 5


def test_a_followed_conversation_hides_the_others_but_the_cursor_moves_past_them() -> None:
    follow = Follow(CHAT)
    assert [follow.take(event(1, OTHER)), follow.take(event(2)), follow.take(typing(OTHER))] == [False, True, False]
    assert follow.cursor == 2


def test_the_cursor_follows_the_server_back_and_past_expired_events() -> None:
    follow = Follow()
    follow.take(event(9))
    assert follow.caught_up(9) is None
    assert "restored" in follow.caught_up(4) and follow.cursor == 4
    assert follow.take(event(5))  # numbered again by the restored server: a new event
    assert "no longer kept" in follow.expired(40) and follow.cursor == 40


def test_a_dropped_stream_reconnects_and_resumes_from_the_last_seq_with_nothing_missed_or_twice() -> None:
    api = EventsApi(
        # the start; the server still down; then what came while disconnected
        polls=[page([], 5), DROPPED, page([event(8)], 8)],
        streams=[
            CONNECTED + sse(event(6)) + sse(typing()) + sse(event(7)) + [DROPPED],
            CONNECTED + sse(event(8)) + sse(event(9)),  # a replayed 8 is not shown twice
        ],
    )
    shown, notices, pauses = watched(api)
    assert [each.get("seq") for each in shown] == [6, None, 7, 8, 9]
    assert api.requests == [("poll", None), ("stream", 5), ("poll", 7), ("poll", 7), ("stream", 8), ("poll", 9)]
    assert notices.splitlines() == [
        "watching bob (Ctrl-C to stop)",
        f"connection lost ({DROPPED}); reconnecting",
        "reconnected; resuming after seq 8",
        "connection lost (the server closed the stream); reconnecting",
    ]
    assert pauses == [0.5, 1.0, 0.5]  # longer after each failure in a row, from the start once connected


def test_a_restarting_server_or_a_busy_one_is_waited_for() -> None:
    restarting = {"type": "error", "error_code": "server_restarting", "detail": "this server is stopping"}
    api = EventsApi(
        polls=[page([], 0), ServerError("starting (server_busy)", status=503), page([], 1)],
        streams=[CONNECTED + sse(event(1)) + sse(restarting, "error"), CONNECTED],
    )
    shown, notices, pauses = watched(api)
    assert [each["seq"] for each in shown] == [1]
    assert "connection lost (this server is stopping (server_restarting)); reconnecting" in notices
    assert pauses[:2] == [0.5, 1.0]


def test_expired_events_are_reported_and_the_watch_goes_on_from_the_newest() -> None:
    expired = ServerError("events after 3 are no longer kept (cursor_expired)", status=410, code="cursor_expired",
                          body={"resume_from": 50})
    resync = {"type": "resync", "reason": "cursor_expired", "resume_from": 70, "detail": "gone"}
    api = EventsApi(
        polls=[page([], 2), expired],
        streams=[CONNECTED + sse(event(3)) + [DROPPED], CONNECTED + sse(event(51)) + sse(resync, "resync"),
                 CONNECTED + sse(event(71))],
    )
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        Watcher(api, Follow(), Shown(), Output(as_json=True, out=out), sleep=lambda _: None).run("bob")
    warnings = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(each["type"], each["reason"], each["resume_from"]) for each in warnings] == [
        ("resync", "cursor_expired", 50), ("resync", "cursor_expired", 70)]
    assert [request for request in api.requests if request[0] == "stream"] == [
        ("stream", 2), ("stream", 50), ("stream", 70)]


def test_a_too_slow_resync_reconnects_at_once_from_the_last_seq() -> None:
    too_slow = {"type": "resync", "reason": "too_slow", "resume_from": 1, "detail": "did not keep up"}
    api = EventsApi(polls=[page([], 0)], streams=[CONNECTED + sse(event(1)) + sse(too_slow, "resync"), CONNECTED])
    shown, notices, pauses = watched(api)
    assert api.requests == [("poll", None), ("stream", 0), ("stream", 1), ("poll", 1)]
    assert pauses == [0.5]  # after the second stream, not between the two


def test_an_ended_session_or_an_unreachable_server_at_the_start_is_final() -> None:
    revoked = {"type": "error", "error_code": "invalid_token", "detail": "the access token expired or was revoked"}
    api = EventsApi(polls=[page([], 0)], streams=[CONNECTED + sse(revoked, "error")])
    with pytest.raises(SessionExpired, match="chat4all login"):
        Watcher(api, Follow(), Shown(), Output(out=io.StringIO(), err=io.StringIO())).run("bob")
    with pytest.raises(Unreachable):
        Watcher(EventsApi(polls=[DROPPED], streams=[]), Follow(), Shown(), Output()).run("bob")
    with pytest.raises(ServerError, match="not found"):
        failing = EventsApi(polls=[page([], 0), ServerError("not found", status=404)], streams=[[DROPPED]])
        Watcher(failing, Follow(), Shown(), Output(out=io.StringIO(), err=io.StringIO()), sleep=lambda _: None).run("bob")


def test_a_line_escapes_what_could_drive_the_terminal() -> None:
    assert printable("hi \x1b[2J\u202eevil\nnext") == "hi \\x1b[2J\\u202eevil\\nnext"
    me = Credentials("http://hub.test", "bob", "u-1", "token", expires_at=4e9)

    class Directory:
        def call(self, method: str, path: str, **options: Any) -> Any:
            if path == "/v1/users":
                return {"users": [{"user_id": "u-1", "username": "bob"}, {"user_id": "u-2", "username": "alice"}]}
            return {"conversation_id": CHAT, "type": "private", "members": ["u-1", "u-2"], "metadata": {}}

    lines = EventLines(Directory(), me, Output())  # type: ignore[arg-type]
    created = {"type": "message.created", "at": "2026-12-07T18:00:00Z", "data": {
        "message_id": "m-1", "conversation_id": CHAT, "from": "u-2", "payload": {"type": "text", "text": "\x1b[31mred"}}}
    assert lines.line(created).endswith("  [with alice]  alice: \\x1b[31mred")
    status = {"type": "message.status", "at": "2026-12-07T18:00:01Z", "data": {
        "message_id": "m-1", "conversation_id": CHAT, "status": "read", "channel": None}}
    assert lines.line(status).endswith("your message “\\x1b[31mred” is read")


def test_a_failed_channel_is_shown_with_its_reason() -> None:
    me = Credentials("http://hub.test", "bob", "u-1", "token", expires_at=4e9)
    lines = EventLines(None, me, Output())  # type: ignore[arg-type]

    def status(channel: dict[str, Any]) -> dict[str, Any]:
        return {"type": "message.status", "at": "2026-12-07T18:00:01Z", "data": {
            "message_id": "m-1", "conversation_id": None, "status": "routed", "channel": channel}}

    failed = status({"name": "whatsapp", "status": "failed", "detail": "provider refused: \x1b[2Jnumber unknown"})
    assert lines.line(failed).endswith("your message m-1 is routed (whatsapp: failed: provider refused: \\x1b[2Jnumber unknown)")
    delivered = status({"name": "instagram", "status": "delivered", "detail": None})
    assert lines.line(delivered).endswith("your message m-1 is routed (instagram: delivered)")
