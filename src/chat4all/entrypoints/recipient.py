"""The recipient side as the composition root wires it: the adapters of users' event logs per
profile (the log's reader, the wake-ups of its readers, the ephemeral notices), and the use
cases over them (history pages, read horizons, the long poll, live connections, typing).

The root uses it in four places: `embedded_event_adapters` / `distributed_event_adapters` make
an API process's `EventAdapters`; their `notifier` goes to SendMessage and CreateConversation,
which wake readers after they commit; `recipient_use_cases` builds the use cases; and
`add_event_background` runs the retention purge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from chat4all.adapters.caching import ExpiringCache
from chat4all.application.auth import ResolveToken
from chat4all.application.events import PurgeEvents, ReadEvents
from chat4all.application.history import ReadHistory
from chat4all.application.live import LiveEvents, LiveLimits
from chat4all.application.live_feed import FeedLimits
from chat4all.application.log_reads import SharedLogReads
from chat4all.application.ports import (
    Clock,
    EventLogHeads,
    EventNotifier,
    LiveNotices,
    UnitOfWorkFactory,
    UserEventReader,
)
from chat4all.application.reading import MarkConversationRead
from chat4all.application.typing_notices import SendTyping
from chat4all.entrypoints.background import BackgroundTasks, every
from chat4all.entrypoints.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

PURGE_EVERY = 3600.0  # seconds between runs of the retention purge


@attrs.define
class EventAdapters:
    reader: UserEventReader
    notifier: EventNotifier
    notices: LiveNotices
    heads: EventLogHeads | None = None
    on_start: list[Callable[[], Awaitable[None]]] = attrs.field(factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = attrs.field(factory=list)


def embedded_event_adapters(engine: AsyncEngine, notifier: EventNotifier) -> EventAdapters:
    """One process: every writer and reader is here, so wake-ups and notices stay in it.

    Live connections read the log on a SQLite connection of their own, each statement on its own
    (autocommit): the engine's one connection takes the write lock for every transaction, and a
    read of every woken connection's log queued behind (and between) the writes made the sends
    themselves wait (1 s at 100 msg/s for 200 clients, against 0.15 s without). In WAL mode the
    readers neither wait for the writer nor hold it up."""
    from sqlalchemy import pool

    from chat4all.adapters.live_notices import InProcessLiveNotices
    from chat4all.adapters.sql.engine import create_engine
    from chat4all.adapters.sql.event_heads import SqlEventLogHeads
    from chat4all.adapters.sql.event_log import SqlUserEventReader

    if isinstance(engine.pool, pool.StaticPool):  # an in-memory database exists only in its one connection
        return EventAdapters(SqlUserEventReader(engine), notifier, InProcessLiveNotices(), SqlEventLogHeads(engine))
    reads = create_engine(engine.url.render_as_string(hide_password=False))
    autocommit = reads.execution_options(isolation_level="AUTOCOMMIT")
    return EventAdapters(
        SqlUserEventReader(autocommit),
        notifier,
        InProcessLiveNotices(),
        SqlEventLogHeads(autocommit),
        on_stop=[reads.dispose],
    )


def distributed_event_adapters(settings: Settings, engine: AsyncEngine, pool: Any) -> EventAdapters:
    """An API process among several: commits anywhere wake its readers through PostgreSQL's
    LISTEN/NOTIFY, and typing notices reach the other processes' connections the same way. The
    live connections read the log on `pool` (the direct psycopg pool)."""
    from chat4all.adapters.sql.event_heads import SqlEventLogHeads
    from chat4all.adapters.sql.event_log import SqlUserEventReader
    from chat4all.adapters.sql.postgres.event_reads import PostgresUserEventReader
    from chat4all.adapters.sql.postgres.listener import PostgresEventNotifier
    from chat4all.adapters.sql.postgres.listening import PostgresListener
    from chat4all.adapters.sql.postgres.live_notices import PostgresLiveNotices

    listener = PostgresListener(settings.database_url)  # one LISTEN connection for wake-ups and notices
    notifier = PostgresEventNotifier(listener)
    notices = PostgresLiveNotices(listener, engine)
    return EventAdapters(
        PostgresUserEventReader(pool, SqlUserEventReader(engine)),
        notifier,
        notices,
        SqlEventLogHeads(engine),
        on_start=[listener.start],
        on_stop=[listener.stop],
    )


@attrs.frozen
class RecipientUseCases:
    read_history: ReadHistory
    mark_conversation_read: MarkConversationRead
    read_events: ReadEvents
    live_events: LiveEvents
    send_typing: SendTyping
    purge_events: PurgeEvents


def recipient_use_cases(
    settings: Settings, uow: UnitOfWorkFactory, clock: Clock, events: EventAdapters, resolve_token: ResolveToken
) -> RecipientUseCases:
    configured = settings.events
    read_events = ReadEvents(SharedLogReads(events.reader), events.notifier)
    limits = LiveLimits(
        per_user=configured.max_connections_per_user,
        per_process=configured.max_connections,
        token_check=configured.token_check,
        feed=FeedLimits(queue_size=configured.queue_size, slow_client=configured.slow_client),
    )
    return RecipientUseCases(
        read_history=ReadHistory(uow),
        mark_conversation_read=MarkConversationRead(uow, clock, events.notifier),
        read_events=read_events,
        live_events=LiveEvents(read_events, events.notifier, events.notices, resolve_token, clock, limits, events.heads),
        send_typing=SendTyping(uow, clock, events.notices, interval=configured.typing_interval, caches=ExpiringCache),
        purge_events=PurgeEvents(events.reader, clock, configured.retention),
    )


def add_event_background(background: BackgroundTasks, recipient: RecipientUseCases) -> None:
    background.add("event-purge", lambda: every(PURGE_EVERY, recipient.purge_events.execute, "event-purge"))
