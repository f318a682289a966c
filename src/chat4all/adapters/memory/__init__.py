"""In-memory adapters for every application port: fast, deterministic, for tests."""

from chat4all.adapters.memory.clock import ManualClock, RandomIds, SequentialIds
from chat4all.adapters.memory.connectors import RecordingConnector
from chat4all.adapters.memory.outbox import InMemoryOutbox, InMemoryOutboxReader
from chat4all.adapters.memory.publisher import RecordingPublisher
from chat4all.adapters.memory.repositories import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory
from chat4all.adapters.memory.security import PlainTestHasher, PredictableTokenIssuer
from chat4all.adapters.memory.storage import InMemoryFileStorage
from chat4all.adapters.memory.store import InMemoryStore

__all__ = [
    "InMemoryFileStorage",
    "InMemoryOutbox",
    "InMemoryOutboxReader",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "InMemoryUnitOfWorkFactory",
    "ManualClock",
    "PlainTestHasher",
    "PredictableTokenIssuer",
    "RandomIds",
    "RecordingConnector",
    "RecordingPublisher",
    "SequentialIds",
]
