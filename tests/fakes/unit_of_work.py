"""The in-memory unit of work: every repository over one staged transaction of an `InMemoryStore`."""

from __future__ import annotations

import asyncio

from tests.fakes.channels import InMemoryChannelRecords
from tests.fakes.events import InMemoryUserEventLog, InMemoryUserEventReader
from tests.fakes.login_attempts import InMemoryLoginAttemptRepository
from tests.fakes.outbox import InMemoryOutbox
from tests.fakes.read_state import (
    InMemoryConversationCounters,
    InMemoryMessageHistory,
    InMemoryReadHorizons,
    InMemoryReceipts,
)
from tests.fakes.repositories import (
    InMemoryConversationRepository,
    InMemoryMessageRepository,
    InMemoryTokenRepository,
    InMemoryUploadRepository,
    InMemoryUserRepository,
)
from tests.fakes.store import InMemoryStore, Transaction


class InMemoryUnitOfWork:
    def __init__(self, store: InMemoryStore) -> None:
        self._tx = Transaction(store)
        self.users = InMemoryUserRepository(self._tx)
        self.tokens = InMemoryTokenRepository(self._tx)
        self.login_attempts = InMemoryLoginAttemptRepository(self._tx)
        self.conversations = InMemoryConversationRepository(self._tx)
        self.messages = InMemoryMessageRepository(self._tx)
        self.uploads = InMemoryUploadRepository(self._tx)
        self.outbox = InMemoryOutbox(self._tx)
        self.events = InMemoryUserEventLog(self._tx)
        self.conversation_counters = InMemoryConversationCounters(self._tx)
        self.history = InMemoryMessageHistory(self._tx)
        self.read_horizons = InMemoryReadHorizons(self._tx)
        self.receipts = InMemoryReceipts(self._tx)
        self.channels = InMemoryChannelRecords(self._tx)

    async def __aenter__(self) -> InMemoryUnitOfWork:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._tx.close()

    async def commit(self) -> None:
        await asyncio.sleep(0)  # let concurrent units of work interleave, as they would against a database
        self._tx.commit()


class InMemoryUnitOfWorkFactory:
    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store if store is not None else InMemoryStore()
        self.reader = InMemoryUserEventReader(self.store)
        self.opened: list[InMemoryUnitOfWork] = []

    def __call__(self) -> InMemoryUnitOfWork:
        uow = InMemoryUnitOfWork(self.store)
        self.opened.append(uow)
        return uow
