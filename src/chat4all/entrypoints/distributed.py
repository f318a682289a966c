"""The distributed profile's adapters: PostgreSQL, S3-compatible object storage and Kafka.

The API process (role `api`, `chat4all serve`) accepts messages into PostgreSQL and its outbox
relay moves the committed events to Kafka; worker processes (role `worker`, `chat4all worker`)
consume them, route each message and deliver it through the channel connectors. Both run their
hot paths on psycopg directly (`adapters.sql.postgres`): the API's intake and relay in one
statement each, the worker's batches and send ledger in one or two round trips.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from chat4all.adapters.connectors import mock_connectors
from chat4all.application.work import every_stream
from chat4all.entrypoints.profiles import Parts, injected_failures
from chat4all.entrypoints.settings import Settings, SettingsError

API = "api"
WORKER = "worker"


def require_services(settings: Settings) -> tuple[str, Any]:
    if not settings.kafka_bootstrap or settings.s3 is None:
        raise SettingsError("the distributed profile needs CHAT4ALL_KAFKA_BOOTSTRAP and the CHAT4ALL_S3_* settings")
    return settings.kafka_bootstrap, settings.s3


def make_storage(settings: Settings) -> Any:
    from chat4all.adapters.storage.s3 import S3FileStorage, S3StorageOptions

    _, s3 = require_services(settings)
    return S3FileStorage.from_options(
        S3StorageOptions(
            bucket=s3.bucket,
            endpoint_url=s3.endpoint_url,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            region=s3.region,
            presign_endpoint=s3.public_endpoint_url if s3.public_endpoint_url != s3.endpoint_url else None,
            copy_ahead=s3.copy_ahead,
        )
    )


class Distributed(Parts):
    """The adapters of an API process (`api`) or of a worker (`worker`)."""

    def __init__(self, settings: Settings, role: str) -> None:
        self.bootstrap_servers, _ = require_services(settings)
        super().__init__(settings)
        self.role = role

    @cached_property
    def engine(self) -> Any:
        from chat4all.adapters.sql.engine import check_database, create_engine

        # No pre-ping of a worker's pooled connections: a unit of work that fails on a dead
        # connection is retried by the worker.
        engine = create_engine(self.settings.database_url, pre_ping=self.role != WORKER)
        self.checks["database"] = lambda: check_database(engine)
        self.on_stop.append(engine.dispose)
        return engine

    @cached_property
    def pool(self) -> Any:
        """A direct psycopg pool that opens with the process, in the background. The API's opens
        five connections (the intake's four statements in flight and the relay): the first burst
        of requests would otherwise wait while they are made one by one."""
        from chat4all.adapters.sql.postgres.connections import direct_pool

        pool = direct_pool(self.settings.database_url, min_connections=5 if self.role == API else 1)
        self.on_start.append(lambda: pool.open(wait=False))
        self.on_stop.append(pool.close)
        return pool

    def uow(self) -> Any:
        from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory

        return SqlUnitOfWorkFactory(self.engine)

    def storage(self) -> Any:
        storage = make_storage(self.settings)
        self.checks["storage"] = storage.check
        self.on_stop.append(storage.close)
        return storage

    def publisher(self) -> Any:
        from chat4all.adapters.kafka import KafkaEventPublisher

        publisher = KafkaEventPublisher(
            self.bootstrap_servers, client_id=f"chat4all-{self.role}", topic_prefix=self.settings.kafka.topic_prefix
        )
        self.checks["broker"] = publisher.check
        self.on_start.append(publisher.start)
        self.on_stop.append(publisher.stop)
        return publisher

    def outbox_reader(self) -> Any:
        if self.role == API:  # the relay: one statement per round
            from chat4all.adapters.sql.postgres.outbox import PostgresOutboxReader

            return PostgresOutboxReader(self.pool)
        from chat4all.adapters.sql.outbox import SqlOutboxReader

        return SqlOutboxReader(self.engine)

    def connectors(self) -> Any:
        if self.role == WORKER:
            from chat4all.adapters.sql.postgres.ledger import PostgresSendLedger

            ledger: Any = PostgresSendLedger(self.pool)
        else:
            from chat4all.adapters.sql.ledger import SqlSendLedger

            ledger = SqlSendLedger(self.engine)
        return mock_connectors(ledger=ledger, **injected_failures(self.settings))

    def intake(self) -> Any:
        if self.role != API:
            return None
        from chat4all.adapters.sql.postgres.intake import PostgresMessageIntake

        return PostgresMessageIntake(self.pool)

    def events(self) -> Any:
        """The API's live side: its readers of the user event log, woken by PostgreSQL LISTEN."""
        if self.role != API:
            return None
        from chat4all.entrypoints.recipient import distributed_event_adapters

        return distributed_event_adapters(self.settings, self.engine, self.pool)

    def webhooks(self) -> Any:
        """Managed through the API, fed and sent by the workers."""
        from chat4all.entrypoints.webhooks import postgres_webhook_adapters

        settings = self.settings
        sending = self.role == WORKER
        return postgres_webhook_adapters(settings.database_url, self.engine, sending, settings.webhooks.allow_private)

    def message_batches(self) -> Any:
        if self.role != WORKER:
            return None
        from chat4all.adapters.sql.postgres.batches import PostgresMessageBatches

        return PostgresMessageBatches(self.pool)


def channels(settings: Settings) -> tuple[str, ...]:
    """The deployment's channels: those of the connectors it runs."""
    return tuple(mock_connectors())


async def prepare_distributed_services(settings: Settings) -> None:
    """Creates the bucket and the topics if missing (run by `chat4all migrate`); idempotent."""
    from chat4all.adapters.kafka import ensure_topics

    bootstrap, _ = require_services(settings)
    storage = make_storage(settings)
    try:
        await storage.ensure_bucket()
    finally:
        await storage.close()
    kafka = settings.kafka
    await ensure_topics(
        bootstrap,
        [kafka.topic_prefix + stream for stream in every_stream(channels(settings))],
        partitions=kafka.partitions,
        replication_factor=kafka.replication,
    )
