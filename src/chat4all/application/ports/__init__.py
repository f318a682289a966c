"""Ports: what the use cases need from the outside world, as structural protocols, by concern.

- `repositories`: the unit of work and the repositories it holds;
- `messages`: messages in storage, and the two ports that write them (`MessageIntake`, `MessageBatches`);
- `events`: the outbox, its relay and the event bus;
- `storage`: upload bytes;
- `connectors`: the channels messages leave through, and the pipeline's metrics;
- `security`, `system`: password hashes and tokens; time and ids;
- `caching`: facts kept in the process between requests.

Every name is importable from this package, e.g. `from chat4all.application.ports import UnitOfWork`.
"""

from chat4all.application.ports.caching import Cache, CacheFactory
from chat4all.application.ports.connectors import ChannelConnector, DeliveryMetrics, NoMetrics, SendResult
from chat4all.application.ports.events import EventPublisher, Outbox, OutboxEvent, OutboxReader, OutboxSignal
from chat4all.application.ports.messages import MessageBatches, MessageIntake, MessageRepository
from chat4all.application.ports.repositories import (
    ConversationRepository,
    LoginAttemptRepository,
    TokenRepository,
    UnitOfWork,
    UnitOfWorkFactory,
    UploadRepository,
    UserRepository,
)
from chat4all.application.ports.security import PasswordHasher, TokenIssuer
from chat4all.application.ports.storage import FileStorage
from chat4all.application.ports.system import Clock, IdGenerator

__all__ = [
    "Cache",
    "CacheFactory",
    "ChannelConnector",
    "Clock",
    "ConversationRepository",
    "DeliveryMetrics",
    "EventPublisher",
    "FileStorage",
    "IdGenerator",
    "LoginAttemptRepository",
    "MessageBatches",
    "MessageIntake",
    "MessageRepository",
    "NoMetrics",
    "Outbox",
    "OutboxEvent",
    "OutboxReader",
    "OutboxSignal",
    "PasswordHasher",
    "SendResult",
    "TokenIssuer",
    "TokenRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UploadRepository",
    "UserRepository",
]
