"""Server-Sent Events read from the lines of a streamed `text/event-stream` answer, after the
format's rules (https://html.spec.whatwg.org/multipage/server-sent-events.html): `field: value`
lines, a blank line ends an event, lines starting with `:` are comments (the hub sends
`: connected` once the stream listens, and `: keep-alive` when it has nothing else to send)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamEvent:
    event: str
    data: str
    id: str | None = None


@dataclass(frozen=True)
class Comment:
    text: str


def read_stream(lines: Iterable[str]) -> Iterator[StreamEvent | Comment]:
    """The events and comments of a stream, given its lines without their line breaks."""
    event, data, event_id = "", [], None
    for line in lines:
        if not line:
            if data:
                yield StreamEvent(event or "message", "\n".join(data), event_id)
            event, data, event_id = "", [], None
            continue
        if line.startswith(":"):
            yield Comment(line[1:].strip())
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
        # `retry` and unknown fields are ignored: the client chooses its own reconnection delays
