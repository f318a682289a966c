"""Committed state shared by in-memory units of work, and the staging each one does until commit."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import defaultdict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from chat4all.application.errors import DuplicateKey
from chat4all.application.ports import OutboxEvent, SentCopy
from chat4all.domain.channel_handles import InboundReply
from chat4all.domain.conversations import Conversation
from chat4all.domain.events import UserEvent
from chat4all.domain.failover import DeliveryAttempt
from chat4all.domain.messages import Message
from chat4all.domain.receipts import ReadHorizon, Receipt
from chat4all.domain.uploads import Upload
from chat4all.domain.users import AccessToken, User

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class InMemoryStore:
    """What a database would hold once transactions commit. Tests may read it directly."""

    def __init__(self) -> None:
        self.users: dict[UUID, User] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.login_failures: list[tuple[str, datetime]] = []  # (throttling key, failed at)
        self.conversations: dict[UUID, Conversation] = {}
        self.file_shares: set[tuple[UUID, UUID]] = set()  # (file_id, conversation_id)
        self.messages: dict[UUID, Message] = {}
        self.positions: dict[UUID, int] = {}  # message id -> its position in its conversation
        self.message_counts: dict[UUID, int] = {}  # conversation id -> its message counter
        self.last_messages: dict[UUID, UUID] = {}  # conversation id -> its last message's id
        self.receipts: dict[tuple[UUID, UUID], Receipt] = {}  # (message id, recipient id)
        self.delivery_attempts: dict[tuple[UUID, int], DeliveryAttempt] = {}  # (message id, number)
        self.horizons: dict[tuple[UUID, UUID], ReadHorizon] = {}  # (conversation id, member id)
        self.event_counters: dict[UUID, int] = {}  # user id -> last seq
        self.user_events: dict[UUID, list[UserEvent]] = {}  # user id -> their kept events, by seq
        self.uploads: dict[UUID, Upload] = {}
        self.channel_handles: dict[tuple[UUID, str], str | None] = {}  # (user id, channel) -> handle (None: removed)
        self.provider_copies: dict[tuple[str, str], SentCopy] = {}  # (channel, provider message id)
        self.inbound_replies: dict[tuple[str, str], UUID] = {}  # (channel, provider message id) -> message id
        self.unmatched_inbound: dict[tuple[str, str], tuple[InboundReply, str]] = {}  # -> (reply, reason)
        self.outbox: dict[int, OutboxEvent] = {}
        self.outbox_claimed: set[int] = set()
        self.outbox_sequence = itertools.count(1)
        self.row_locks: defaultdict[Hashable, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.commits = 0

    def outbox_events(self) -> list[OutboxEvent]:
        return list(self.outbox.values())


class Staged(Protocol):
    def apply(self) -> None: ...

    def discard(self) -> None: ...


S = TypeVar("S", bound=Staged)


class Table(Generic[K, V]):
    """Committed rows overlaid with this transaction's writes. Rows go in and out as copies,
    so changing a loaded object changes nothing until it is written and committed."""

    def __init__(self, rows: dict[K, V]) -> None:
        self.rows = rows
        self._staged: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return copy.deepcopy(self._staged.get(key, self.rows.get(key)))

    def has(self, key: K) -> bool:
        return key in self._staged or key in self.rows

    def select(self, predicate: Callable[[V], bool] = lambda row: True) -> list[V]:
        return [copy.deepcopy(row) for row in {**self.rows, **self._staged}.values() if predicate(row)]

    def select_keys(self, predicate: Callable[[K, V], bool]) -> list[K]:
        return [key for key, row in {**self.rows, **self._staged}.items() if predicate(key, row)]

    def put(self, key: K, row: V) -> None:
        self._staged[key] = copy.deepcopy(row)

    def apply(self) -> None:
        self.rows.update(self._staged)
        self._staged.clear()

    def discard(self) -> None:
        self._staged.clear()


class StagedSet(Generic[K]):
    def __init__(self, rows: set[K]) -> None:
        self.rows = rows
        self._staged: set[K] = set()

    def all(self) -> set[K]:
        return self.rows | self._staged

    def add(self, item: K) -> None:
        self._staged.add(item)

    def apply(self) -> None:
        self.rows.update(self._staged)
        self._staged.clear()

    def discard(self) -> None:
        self._staged.clear()


class Transaction:
    """Writes are staged and become visible to others only at commit; closing without commit drops them.

    Unique keys are checked when a row is added and again at commit (another transaction may
    have committed the same key meanwhile). After a DuplicateKey the transaction is unusable,
    like a database transaction after a constraint violation. `lock` mimics SELECT ... FOR UPDATE.
    """

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self._parts: list[Staged] = []
        self._checks: list[Callable[[], None]] = []
        self._held: dict[Hashable, asyncio.Lock] = {}
        self._broken = False

    def table(self, rows: dict[K, V]) -> Table[K, V]:
        return self.track(Table(rows))

    def set(self, rows: set[K]) -> StagedSet[K]:
        return self.track(StagedSet(rows))

    def track(self, part: S) -> S:
        self._parts.append(part)
        return part

    def check_at_commit(self, check: Callable[[], None]) -> None:
        self._checks.append(check)

    def duplicate(self, error: DuplicateKey) -> DuplicateKey:
        self._broken = True
        return error

    async def lock(self, key: Hashable) -> None:
        if key not in self._held:
            lock = self.store.row_locks[key]
            await lock.acquire()
            self._held[key] = lock

    def commit(self) -> None:
        if self._broken:
            raise RuntimeError("this unit of work hit a duplicate key and must be discarded")
        try:
            for check in self._checks:
                check()
        except DuplicateKey:
            self._broken = True
            raise
        for part in self._parts:
            part.apply()
        self._checks.clear()
        self.store.commits += 1

    def close(self) -> None:
        for part in self._parts:
            part.discard()
        self._checks.clear()
        for lock in self._held.values():
            lock.release()
        self._held.clear()
