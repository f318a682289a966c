"""`chat4all watch`: the user's live events as they come, until Ctrl-C.

It reads the Server-Sent Events stream (`GET /v1/events/stream`) with httpx, the client's HTTP
library already: the watch only listens, so the WebSocket (a new dependency) would add nothing,
and long-polls alone would miss typing notices, which are never stored and only streamed.

Each connection begins with an immediate long-poll (`GET /v1/events?since=CURSOR&timeout=0`):
the first tells where the user's events stand now (the watch starts from there), a later one
fetches what came while disconnected, and answers 410 if those are no longer kept; the stream
then resumes after the cursor. When the stream ends (the server restarts, the network drops, or
45 s pass without even a keep-alive) the watch reconnects by itself, with growing delays, and
resumes from the last seq it printed: nothing missed, nothing twice (`follow.Follow`). Only the
first connection's failures are final: a wrong URL, an expired session."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from chat4all.client.api import Hub
from chat4all.client.chat import conversation_id_for
from chat4all.client.credentials import load_credentials
from chat4all.client.errors import LOGIN_AGAIN, ServerError, SessionExpired, Unreachable
from chat4all.client.event_lines import EventLines
from chat4all.client.follow import Follow
from chat4all.client.output import Output
from chat4all.client.paths import Directories
from chat4all.client.sse import Comment, read_stream

# The server sends a comment every 15 s when it has nothing else: 45 s of silence is a lost connection.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=45.0)
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)  # seconds before each attempt after a failure; then the last one
CATCH_UP_PAGE = 100
PASSING_STATUSES = {408, 429, 500, 502, 503, 504}  # a server that is starting, stopping or busy


class Watcher:
    def __init__(self, hub: Hub, follow: Follow, lines: EventLines, output: Output,
                 sleep: Callable[[float], None] = time.sleep):
        self._hub, self._follow, self._lines, self._output, self._sleep = hub, follow, lines, output, sleep
        self._failures = 0  # attempts in a row that did not get a stream

    def run(self, watching: str) -> None:
        self.catch_up()  # its errors are final: a wrong URL, an expired session, no such conversation
        self._output.notice(f"watching {watching} (Ctrl-C to stop)")
        while True:
            try:
                if self._failures:
                    self.catch_up()
                lost = self.stream()
            except Unreachable as error:
                lost = str(error)
            except ServerError as error:
                if error.status not in PASSING_STATUSES:
                    raise
                lost = str(error)
            if lost is not None:
                self._lost(lost)

    def _lost(self, reason: str) -> None:
        if not self._failures:
            self._output.notice(f"connection lost ({reason}); reconnecting")
        self._sleep(RECONNECT_DELAYS[min(self._failures, len(RECONNECT_DELAYS) - 1)])
        self._failures += 1

    def catch_up(self) -> None:
        """One page of what came after the cursor (the newest seq, the first time), printed."""
        params: dict[str, Any] = {"timeout": 0, "limit": CATCH_UP_PAGE}
        if self._follow.cursor is not None:
            params["since"] = self._follow.cursor
        try:
            page = self._hub.call("GET", "/v1/events", params=params)
        except ServerError as error:
            if error.code != "cursor_expired":
                raise
            self._resync({"reason": "cursor_expired", "resume_from": error.body["resume_from"], "detail": str(error)})
            return
        for envelope in page["events"]:
            self._take(envelope)
        if notice := self._follow.caught_up(page["next"]):
            self._output.notice(notice)

    def stream(self) -> str | None:
        """Prints the stream's events until it ends; why it ended (None: reconnect at once)."""
        params = {} if self._follow.cursor is None else {"since": self._follow.cursor}
        with self._hub.fetch("/v1/events/stream", params=params, timeout=STREAM_TIMEOUT) as response:
            for item in read_stream(response.iter_lines()):
                if isinstance(item, Comment):
                    if item.text == "connected":
                        self._connected()
                elif item.event == "resync":
                    return self._resync(json.loads(item.data))
                elif item.event == "error":
                    return self._refused(json.loads(item.data))
                else:
                    self._take(json.loads(item.data))
        return "the server closed the stream"

    def _connected(self) -> None:
        if self._failures:
            self._output.notice(f"reconnected; resuming after seq {self._follow.cursor}")
        self._failures = 0

    def _take(self, envelope: dict[str, Any]) -> None:
        if self._follow.take(envelope):
            self._lines.show(envelope)

    def _resync(self, resync: dict[str, Any]) -> None:
        """`too_slow`: reconnect from the cursor, nothing was lost; `cursor_expired`: say so, go on from the newest."""
        if resync["reason"] == "cursor_expired":
            notice = self._follow.expired(resync["resume_from"])
            self._output.result({"type": "resync", **resync}, f"warning: {notice}")
        return None

    def _refused(self, error: dict[str, Any]) -> str:
        if error.get("error_code") == "invalid_token":
            raise SessionExpired(f"the session has expired or was revoked ({error.get('detail')}): {LOGIN_AGAIN}")
        return f"{error.get('detail')} ({error.get('error_code')})"


def watch(args: argparse.Namespace, output: Output, directories: Directories) -> None:
    me = load_credentials(directories)
    with Hub(me.url, me.access_token, connections=2) as hub:
        lines = EventLines(hub, me, output)
        follow = Follow()
        watching = f"the events of {me.username} on {me.url}"
        if args.conversation:
            follow.conversation_id = conversation_id_for(hub, me, args.conversation)
            lines.learn(hub.call("GET", f"/v1/conversations/{follow.conversation_id}"))
            watching = f"[{lines.title(follow.conversation_id)}] ({follow.conversation_id}) as {me.username} on {me.url}"
        Watcher(hub, follow, lines, output).run(watching)
