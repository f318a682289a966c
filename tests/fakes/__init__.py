"""In-memory adapters for every application port: fast, deterministic, for tests.

They live with the tests because no profile runs them: the embedded one stores in SQLite and on
the local disk, moves events through `chat4all.adapters.bus` and wakes event readers through
`chat4all.adapters.notifier`; its clock and ids are `chat4all.adapters.system`'s."""

from tests.fakes.clock import ManualClock, SequentialIds
from tests.fakes.connectors import RecordingConnector
from tests.fakes.events import InMemoryEventNotifier, InMemoryUserEventReader
from tests.fakes.outbox import InMemoryOutbox, InMemoryOutboxReader
from tests.fakes.publisher import RecordingPublisher
from tests.fakes.security import PlainTestHasher, PredictableTokenIssuer
from tests.fakes.storage import InMemoryFileStorage
from tests.fakes.store import InMemoryStore
from tests.fakes.unit_of_work import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory

__all__ = [
    "InMemoryEventNotifier",
    "InMemoryFileStorage",
    "InMemoryOutbox",
    "InMemoryOutboxReader",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "InMemoryUnitOfWorkFactory",
    "InMemoryUserEventReader",
    "ManualClock",
    "PlainTestHasher",
    "PredictableTokenIssuer",
    "RecordingConnector",
    "RecordingPublisher",
    "SequentialIds",
]
