"""The distributed profile's composition: PostgreSQL, S3-compatible object storage and Kafka.

The API process (`chat4all serve`) accepts messages into PostgreSQL and its outbox relay moves
the committed events to Kafka; worker processes (`chat4all worker`) consume them, route each
message and deliver it through the channel connectors (in the same pass, or through the
per-channel topics: see `RouteMessage.deliver`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chat4all.adapters.connectors import MockConnector, SendLedger, mock_connectors
from chat4all.application.topics import DEAD_LETTERS, MESSAGE_PROCESSING, channel_topic
from chat4all.entrypoints.bootstrap import (
    Adapters,
    Hub,
    add_api_background,
    add_delivery_background,
    hasher_for,
    wire,
)
from chat4all.entrypoints.settings import S3Settings, Settings, SettingsError

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool


def event_topics(channels: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The topics the worker consumes: the routing topic and one outgoing topic per channel."""
    names = channels if channels is not None else tuple(mock_connectors())
    return [MESSAGE_PROCESSING, *(channel_topic(name) for name in names)]


def all_topics(channels: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Every topic the hub publishes to: the consumed ones and the dead letters."""
    return [*event_topics(channels), DEAD_LETTERS]


def _require_services(settings: Settings) -> tuple[str, S3Settings]:
    if not settings.kafka_bootstrap or settings.s3 is None:
        raise SettingsError("the distributed profile needs CHAT4ALL_KAFKA_BOOTSTRAP and the CHAT4ALL_S3_* settings")
    return settings.kafka_bootstrap, settings.s3


def make_storage(settings: Settings):
    from chat4all.adapters.storage.s3 import S3FileStorage, S3Settings

    _, s3 = _require_services(settings)
    return S3FileStorage.from_settings(
        S3Settings(
            bucket=s3.bucket,
            endpoint_url=s3.endpoint_url,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            region=s3.region,
            presign_endpoint=s3.public_endpoint_url if s3.public_endpoint_url != s3.endpoint_url else None,
            copy_ahead=s3.copy_ahead,
        )
    )


def connectors_with(ledger: SendLedger, settings: Settings) -> dict[str, MockConnector]:
    return mock_connectors(ledger=ledger, failure_rate=settings.connector_failure_rate)


def distributed_adapters(settings: Settings, *, client_id: str, pre_ping: bool = True) -> Adapters:
    from chat4all.adapters.kafka import KafkaEventPublisher
    from chat4all.adapters.sql.engine import check_database, create_engine
    from chat4all.adapters.sql.ledger import SqlSendLedger
    from chat4all.adapters.sql.outbox import SqlOutboxReader
    from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory

    bootstrap, _ = _require_services(settings)
    engine = create_engine(settings.database_url, pre_ping=pre_ping)
    storage = make_storage(settings)
    publisher = KafkaEventPublisher(bootstrap, client_id=client_id, topic_prefix=settings.kafka.topic_prefix)

    return Adapters(
        uow=SqlUnitOfWorkFactory(engine),
        storage=storage,
        publisher=publisher,
        outbox_reader=SqlOutboxReader(engine),
        connectors=connectors_with(SqlSendLedger(engine), settings),
        hasher=hasher_for(settings),
        checks={"database": lambda: check_database(engine), "broker": publisher.check, "storage": storage.check},
        on_start=[publisher.start],
        on_stop=[publisher.stop, storage.close, engine.dispose],
    )


def use_direct_statements(settings: Settings, adapters: Adapters) -> None:
    """The API's hot path on psycopg directly (before `wire`): accepting a message in one statement,
    relaying the outbox in one statement per round (see `adapters.sql.postgres`)."""
    from chat4all.adapters.sql.postgres.intake import PostgresMessageIntake
    from chat4all.adapters.sql.postgres.outbox import PostgresOutboxReader

    # Five connections opened in the background at start (the intake's four statements in flight
    # and the relay): the first burst of requests would otherwise wait while they are made one by one.
    pool = _direct_pool(settings, adapters, min_connections=5)
    adapters.intake = PostgresMessageIntake(pool)
    adapters.outbox_reader = PostgresOutboxReader(pool)


def use_direct_worker_statements(settings: Settings, adapters: Adapters) -> None:
    """The worker's batches on psycopg directly (before `wire`): reading and changing messages, and
    the connectors' send ledger, in one or two round trips each (see `adapters.sql.postgres.batches`)."""
    from chat4all.adapters.sql.postgres.batches import PostgresMessageBatches
    from chat4all.adapters.sql.postgres.ledger import PostgresSendLedger

    pool = _direct_pool(settings, adapters)
    adapters.message_batches = PostgresMessageBatches(pool)
    adapters.connectors = connectors_with(PostgresSendLedger(pool), settings)


def _direct_pool(settings: Settings, adapters: Adapters, *, min_connections: int = 1) -> AsyncConnectionPool:
    """A direct psycopg pool that opens with the process (in the background) and closes first on stop."""
    from chat4all.adapters.sql.postgres.connections import direct_pool

    pool = direct_pool(settings.database_url, min_connections=min_connections)
    adapters.on_start.append(lambda: pool.open(wait=False))
    adapters.on_stop.insert(0, pool.close)
    return pool


def build_distributed_api(settings: Settings) -> Hub:
    """The API process: accepts messages into PostgreSQL; its outbox relay publishes them to Kafka."""
    from chat4all.entrypoints.recipient import distributed_event_adapters

    adapters = distributed_adapters(settings, client_id="chat4all-api")
    use_direct_statements(settings, adapters)
    adapters.events = distributed_event_adapters(settings, adapters.uow.engine)  # type: ignore[attr-defined]
    hub = wire(settings, adapters)
    add_api_background(hub)
    return hub


def build_distributed_worker(settings: Settings) -> Hub:
    """A worker process: the same adapters with its batches on psycopg directly, no outbox relay
    (RouteMessage publishes straight to Kafka), plus the periodic re-drive of messages left
    unfinished. No pre-ping of pooled connections: a unit of work that fails on a dead connection
    is retried by the worker."""
    adapters = distributed_adapters(settings, client_id="chat4all-worker", pre_ping=False)
    use_direct_worker_statements(settings, adapters)
    hub = wire(settings, adapters)
    add_delivery_background(hub)
    return hub


async def prepare_distributed_services(settings: Settings) -> None:
    """Creates the bucket and the topics if missing (run by `chat4all migrate`); idempotent."""
    from chat4all.adapters.kafka import ensure_topics

    bootstrap, _ = _require_services(settings)
    storage = make_storage(settings)
    try:
        await storage.ensure_bucket()
    finally:
        await storage.close()
    kafka = settings.kafka
    await ensure_topics(
        bootstrap,
        [kafka.topic_prefix + name for name in all_topics()],
        partitions=kafka.partitions,
        replication_factor=kafka.replication,
    )
