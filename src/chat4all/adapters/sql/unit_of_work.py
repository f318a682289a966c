from __future__ import annotations

import contextlib
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat4all.adapters.sql.channel_records import SqlChannelRecords
from chat4all.adapters.sql.conversations import SqlConversationRepository
from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import close_quietly, translate_errors
from chat4all.adapters.sql.event_log import SqlUserEventLog
from chat4all.adapters.sql.history import SqlMessageHistory
from chat4all.adapters.sql.login_attempts import SqlLoginAttemptRepository
from chat4all.adapters.sql.messages import SqlMessageRepository
from chat4all.adapters.sql.outbox import SqlOutbox
from chat4all.adapters.sql.read_state import SqlConversationCounters, SqlReadHorizonRepository, SqlReceiptRepository
from chat4all.adapters.sql.uploads import SqlUploadRepository
from chat4all.adapters.sql.users import SqlTokenRepository, SqlUserRepository


class SqlUnitOfWork:
    """One database transaction: `async with uow:` begins it, `commit()` makes it durable, and
    leaving the block without committing rolls it back. Each instance is used once.

    An unreachable database surfaces as `chat4all.domain.errors.Unavailable`.
    """

    users: SqlUserRepository
    tokens: SqlTokenRepository
    login_attempts: SqlLoginAttemptRepository
    conversations: SqlConversationRepository
    messages: SqlMessageRepository
    uploads: SqlUploadRepository
    outbox: SqlOutbox
    events: SqlUserEventLog
    conversation_counters: SqlConversationCounters
    history: SqlMessageHistory
    read_horizons: SqlReadHorizonRepository
    receipts: SqlReceiptRepository
    channels: SqlChannelRecords

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("a unit of work can only be entered once")
        self._stack = contextlib.AsyncExitStack()
        try:
            await self._stack.enter_async_context(exclusive_use(self._engine))
            with translate_errors():
                connection = await self._engine.connect()
                self._stack.push_async_callback(close_quietly, connection)
                await connection.begin()
        except BaseException:
            await self._stack.aclose()
            raise
        self._connection = connection
        self.users = SqlUserRepository(connection)
        self.tokens = SqlTokenRepository(connection)
        self.login_attempts = SqlLoginAttemptRepository(connection)
        self.conversations = SqlConversationRepository(connection)
        self.messages = SqlMessageRepository(connection)
        self.uploads = SqlUploadRepository(connection)
        self.outbox = SqlOutbox(connection)
        self.events = SqlUserEventLog(connection)
        self.conversation_counters = SqlConversationCounters(connection)
        self.history = SqlMessageHistory(connection)
        self.read_horizons = SqlReadHorizonRepository(connection)
        self.receipts = SqlReceiptRepository(connection)
        self.channels = SqlChannelRecords(connection)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Closing rolls back whatever was not committed and returns the connection to the pool.
        if self._stack is not None:
            await self._stack.aclose()
        self._connection = None

    async def commit(self) -> None:
        if self._connection is None:
            raise RuntimeError("commit() outside `async with`")
        with translate_errors():
            await self._connection.commit()


class SqlUnitOfWorkFactory:
    """The `UnitOfWorkFactory` for the composition root: `SqlUnitOfWorkFactory(engine)()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)
