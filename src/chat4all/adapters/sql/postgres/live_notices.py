"""Ephemeral events (`typing`) across API processes: PostgreSQL NOTIFY carries the event itself.

A notice is published with `pg_notify('chat4all_live', '<json>')` outside any transaction, and
handed at once to this process's own subscribers; every other API process LISTENs on the
channel (on the process's one LISTEN connection, `listening.py`) and hands it to theirs (a
process skips the notifications it sent itself). Nothing is
stored: a notice published while a process's LISTEN connection is down never reaches it, which
is what ephemeral means (the next typing notice comes a second or two later). Payloads stay
under PostgreSQL's 8000 bytes: recipients go 100 to a notification, and a typing notice's data
is three short fields.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.live_notices import InProcessLiveNotices
from chat4all.adapters.sql.postgres.listening import PostgresListener
from chat4all.application.ports.live import Deliver
from chat4all.domain.events import EphemeralEvent, EventType

log = logging.getLogger(__name__)

LIVE_CHANNEL = "chat4all_live"
RECIPIENTS_PER_NOTIFICATION = 100


def notice_payloads(origin: str, user_ids: Sequence[UUID], event: EphemeralEvent) -> list[str]:
    envelope = event.envelope()
    ordered = sorted({str(user_id) for user_id in user_ids})
    return [
        json.dumps({"origin": origin, "to": ordered[start : start + RECIPIENTS_PER_NOTIFICATION], **envelope})
        for start in range(0, len(ordered), RECIPIENTS_PER_NOTIFICATION)
    ]


def parse_notice(payload: str) -> tuple[str, list[UUID], EphemeralEvent] | None:
    """The origin, recipients and event of a notification; None for what is not one."""
    try:
        document = json.loads(payload)
        event = EphemeralEvent(EventType(document["type"]), datetime.fromisoformat(document["at"]), document["data"])
        return str(document["origin"]), [UUID(user_id) for user_id in document["to"]], event
    except (ValueError, KeyError, TypeError):
        return None


class PostgresLiveNotices:
    """`LiveNotices` of a distributed API process, hearing the others on `listener` (started by its owner)."""

    def __init__(self, listener: PostgresListener, engine: AsyncEngine) -> None:
        self._engine = engine
        self._origin = uuid.uuid4().hex
        self._local = InProcessLiveNotices()
        listener.on(LIVE_CHANNEL, self._hand_over)

    @contextlib.contextmanager
    def subscribe(self, user_id: UUID, deliver: Deliver) -> Iterator[None]:
        with self._local.subscribe(user_id, deliver):
            yield

    async def publish(self, user_ids: Sequence[UUID], event: EphemeralEvent) -> None:
        self._local.deliver(user_ids, event)
        async with self._engine.connect() as connection:
            for payload in notice_payloads(self._origin, user_ids, event):
                await connection.execute(select(func.pg_notify(LIVE_CHANNEL, payload)))
            await connection.commit()

    def _hand_over(self, payload: str) -> None:
        notice = parse_notice(payload)
        if notice is None:
            log.warning("live notices: ignored a notification that is not one")
            return
        origin, user_ids, event = notice
        if origin != self._origin:  # this process handed its own to its subscribers when it published
            self._local.deliver(user_ids, event)
