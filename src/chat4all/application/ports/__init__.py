"""Ports: what the use cases need from the outside world, as structural protocols, by concern.

- `repositories`: the unit of work and the repositories it holds;
- `messages`: messages in storage, and the two ports that write them (`MessageIntake`, `MessageBatches`);
- `events`: the outbox, its relay and the event bus;
- `events_log`: the per-user event log users read their events from, and the wake-ups of its readers;
- `read_state`: conversation counters, read horizons, receipts and history pages (and the lock order);
- `live`: ephemeral events (typing) to users' live connections;
- `storage`: upload bytes;
- `connectors`: the channels messages leave through, and the pipeline's metrics;
- `security`, `system`: password hashes and tokens; time and ids;
- `caching`: facts kept in the process between requests.

Every name is importable from this package, e.g. `from chat4all.application.ports import UnitOfWork`.
"""

from chat4all.application.ports.caching import Cache, CacheFactory
from chat4all.application.ports.channels import ChannelRecords, SentCopy, UnmatchedReply
from chat4all.application.ports.connectors import (
    ChannelConnector,
    DeliveryMetrics,
    MetricsReport,
    NoMetrics,
    SendResult,
)
from chat4all.application.ports.events import EventPublisher, Outbox, OutboxEvent, OutboxReader, OutboxSignal
from chat4all.application.ports.events_log import EventNotifier, UserEventLog, UserEventReader, WakeUp
from chat4all.application.ports.live import EventLogHeads, LiveNotices
from chat4all.application.ports.messages import BatchWrite, MessageBatches, MessageIntake, MessageRepository
from chat4all.application.ports.read_state import (
    ConversationCounters,
    LocatedMessage,
    MessageHistory,
    ReadHorizonRepository,
    ReadMark,
    ReceiptRepository,
)
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
    "ChannelRecords",
    "ChannelConnector",
    "Clock",
    "ConversationCounters",
    "ConversationRepository",
    "DeliveryMetrics",
    "EventLogHeads",
    "EventNotifier",
    "EventPublisher",
    "FileStorage",
    "IdGenerator",
    "LiveNotices",
    "LocatedMessage",
    "LoginAttemptRepository",
    "BatchWrite",
    "MessageBatches",
    "MessageHistory",
    "MessageIntake",
    "MessageRepository",
    "MetricsReport",
    "NoMetrics",
    "Outbox",
    "OutboxEvent",
    "OutboxReader",
    "OutboxSignal",
    "PasswordHasher",
    "ReadHorizonRepository",
    "ReadMark",
    "ReceiptRepository",
    "SendResult",
    "SentCopy",
    "UnmatchedReply",
    "TokenIssuer",
    "TokenRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UploadRepository",
    "UserEventLog",
    "UserEventReader",
    "UserRepository",
    "WakeUp",
]
