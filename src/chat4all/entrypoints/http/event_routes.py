"""A user's events over HTTP: long-poll (`GET /v1/events`) and Server-Sent Events
(`GET /v1/events/stream`). The WebSocket is `websocket_route`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent

from chat4all.application.events import ReadEvents
from chat4all.application.live import LiveEvents
from chat4all.domain.events import DEFAULT_LIMIT, MAX_LIMIT, MAX_WAIT_SECONDS, EventQuery
from chat4all.entrypoints.http import schemas
from chat4all.entrypoints.http.config import HttpConfig
from chat4all.entrypoints.http.dependencies import UserDep, bearer_secret, provide_user
from chat4all.entrypoints.http.openapi_docs import BEARER, errors
from chat4all.entrypoints.http.sse import event_stream, stream_cursor

MAX_SEQ = 2**63 - 1

Since = Annotated[
    int | None,
    QueryParameter(
        description="The last seq the client has; omitted: from now on (nothing is replayed)",
        ge=0,
        le=MAX_SEQ,
        schema_extra={"minimum": 0, "maximum": MAX_SEQ},
    ),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        description="The last `id:` received, sent by an EventSource when it reconnects; wins over `since`",
        max_length=19,
    ),
]

POLL_DESCRIPTION = (
    "Answers at once with the caller's events after `since` when there are any, else waits up to "
    "`timeout` seconds for the first ones and answers with an empty list. Resume with `since` = `next`. "
    "410 `cursor_expired`: events after `since` are no longer kept; reload over REST, then resume "
    "from `resume_from`. Event types: `message.created`, `message.status`, `conversation.created`, "
    "`conversation.read` (typing notices are never stored: streams only)."
)
STREAM_DESCRIPTION = (
    "Server-Sent Events: `id:` is the event's seq, `event:` its type, `data:` the envelope "
    "`{seq, type, at, data}`. Resumes after the `Last-Event-ID` header (sent by EventSource when it "
    "reconnects), else after `since`, else from now. `typing` events carry no id. A comment line "
    "comes every 15 s when there is nothing else. `event: resync` ends the stream: `cursor_expired` "
    "(reload over REST, then resume from its id) or `too_slow` (resume from the last id received). "
    "`event: error` ends it when the token expires or is revoked."
)


class EventController(Controller):
    path = "/v1/events"
    tags = ["events"]
    security = BEARER
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="The caller's events after a cursor (long-poll)", description=POLL_DESCRIPTION,
         responses=errors(400, 401, 410))
    async def poll(
        self,
        user: UserDep,
        read_events: NamedDependency[ReadEvents],
        since: Since = None,
        timeout: Annotated[float, QueryParameter(description="Seconds to wait when there is nothing", ge=0, le=MAX_WAIT_SECONDS)] = 0,
        limit: Annotated[int, QueryParameter(description="At most this many events", ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> schemas.EventPage:
        batch = await read_events.execute(user.id, EventQuery(since=since, limit=limit, timeout=timeout))
        events = [schemas.EventOut(event.seq, event.type.value, event.at, dict(event.data)) for event in batch.events]
        return schemas.EventPage(events, batch.next)

    @get("/stream", summary="The caller's events as Server-Sent Events", description=STREAM_DESCRIPTION, media_type="text/event-stream",
         responses=errors(400, 401, 429, 503))
    async def stream(
        self,
        request: Request,
        user: UserDep,
        live_events: NamedDependency[LiveEvents],
        http_config: NamedDependency[HttpConfig],
        since: Since = None,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        cursor = stream_cursor(last_event_id, since)
        live_events.check_room(user.id)
        stream = event_stream(live_events, bearer_secret(request), cursor, http_config.events_keepalive)
        return ServerSentEvent(stream, headers={"X-Accel-Buffering": "no"})
