"""What the live transports send, as JSON objects, and as Server-Sent Events.

- a stored event: its envelope `{"seq", "type", "at", "data"}` (SSE: `id:` the seq, `event:` the type);
- a typing notice: `{"type": "typing", "at", "data"}`, without a seq (SSE: no `id:`, so the
  browser's Last-Event-ID stays the last stored event's);
- `{"type": "resync", "reason", "resume_from", "detail"}`: the feed stopped. `cursor_expired`:
  reload over REST, then resume from `resume_from`; `too_slow`: reconnect and resume from the
  last seq received (SSE: `id:` is `resume_from`, so an EventSource reconnects from there);
- a `: connected` comment first, once nothing can be missed any more (typing notices included);
- `{"type": "error", "error_code", "detail"}`: the connection ends (its token expired or was
  revoked, or it was refused).
"""

from __future__ import annotations

import json
from typing import Any

from litestar.response import ServerSentEventMessage

from chat4all.application.live_feed import Ended, Frame, Resync
from chat4all.domain.errors import DomainError
from chat4all.domain.events import UserEvent

KEEP_ALIVE = ServerSentEventMessage(data=None, comment="keep-alive")
CONNECTED = ServerSentEventMessage(data=None, comment="connected")


def frame_json(frame: Frame) -> dict[str, Any]:
    if isinstance(frame, Resync):
        return {"type": "resync", "reason": frame.reason.value, "resume_from": frame.resume_from, "detail": frame.detail}
    if isinstance(frame, Ended):
        return error_json(frame.code, frame.detail)
    return frame.envelope()


def error_json(code: str, detail: str) -> dict[str, Any]:
    return {"type": "error", "error_code": code, "detail": detail}


def encode(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def sse_message(frame: Frame) -> ServerSentEventMessage:
    document = frame_json(frame)
    if isinstance(frame, UserEvent):
        return ServerSentEventMessage(data=encode(document), event=frame.type.value, id=frame.seq)
    if isinstance(frame, Resync):
        return ServerSentEventMessage(data=encode(document), event="resync", id=frame.resume_from)
    return ServerSentEventMessage(data=encode(document), event=document["type"])


def sse_refusal(error: DomainError) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=encode(error_json(error.code, error.detail)), event="error")
