"""A Server-Sent Events stream of one live connection: frames from its feed, a comment line
every `keepalive` seconds when there is nothing to send (so proxies keep it open)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar.response import ServerSentEventMessage

from chat4all.application.live import LiveEvents
from chat4all.application.live_feed import Ended, Resync
from chat4all.domain.errors import DomainError, InvalidInput
from chat4all.entrypoints.http.live_frames import CONNECTED, KEEP_ALIVE, sse_message, sse_refusal

MAX_CURSOR_DIGITS = 19


def stream_cursor(last_event_id: str | None, since: int | None) -> int | None:
    """Where a stream resumes: the Last-Event-ID an EventSource sends when it reconnects (newer
    than the URL's `since`, which it keeps sending), else `since`, else from now (None)."""
    if last_event_id is None or not last_event_id.strip():
        return since
    text = last_event_id.strip()
    if not text.isdigit() or len(text) > MAX_CURSOR_DIGITS:
        raise InvalidInput(
            "Last-Event-ID must be a seq this API sent",
            code="invalid_cursor",
            field_errors={"Last-Event-ID": ["a whole number >= 0"]},
        )
    return int(text)


async def event_stream(
    live: LiveEvents, secret: str, since: int | None, keepalive: float
) -> AsyncIterator[ServerSentEventMessage]:
    async with contextlib.AsyncExitStack() as stack:
        try:
            session = await stack.enter_async_context(live.connect(secret))
        except DomainError as refused:  # lost a race for the last place, or the token just ended
            yield sse_refusal(refused)
            return
        session.feed.resume(since)
        yield CONNECTED  # from here on nothing is missed, typing notices included
        while True:
            frame = await session.feed.next(keepalive)
            if frame is None:
                yield KEEP_ALIVE
                continue
            yield sse_message(frame)
            if isinstance(frame, Resync | Ended):
                return  # the client reconnects (from the resync's id) or logs in again
