"""CHAT4ALL_KAFKA_* and the workers' group: the distributed profile's topics and consumer group."""

from __future__ import annotations

from datetime import timedelta

import attrs

from chat4all.entrypoints.env_values import EnvReader, SettingsError


@attrs.frozen
class KafkaSettings:
    """The distributed profile's topics and the workers' consumer group.

    The group timeouts are chosen for recovery: a worker that dies leaves the group after
    `session_timeout` (6 s, the least a broker accepts by default), so another worker takes its
    partitions within about 8 s; a restarted worker comes back under its `worker_instance_id`
    (static membership, see `adapters.kafka.membership`) and gets its partitions back at once.
    """

    partitions: int = 6
    replication: int = 1
    topic_prefix: str = ""
    worker_group: str = "chat4all-worker"
    worker_instance_id: str | None = None  # None: "<host name>-<slot>", the first slot free on this host
    session_timeout: timedelta = timedelta(seconds=6)
    heartbeat_interval: timedelta = timedelta(seconds=1)
    rebalance_timeout: timedelta = timedelta(seconds=30)


def load_kafka_settings(reader: EnvReader) -> KafkaSettings:
    session_ms = reader.integer("CHAT4ALL_KAFKA_SESSION_TIMEOUT_MS", 6_000, minimum=6_000, maximum=1_800_000)
    heartbeat_ms = reader.integer("CHAT4ALL_KAFKA_HEARTBEAT_INTERVAL_MS", 1_000, minimum=100, maximum=600_000)
    if heartbeat_ms * 3 > session_ms:
        raise SettingsError(
            f"CHAT4ALL_KAFKA_HEARTBEAT_INTERVAL_MS ({heartbeat_ms}) must be at most a third of "
            f"CHAT4ALL_KAFKA_SESSION_TIMEOUT_MS ({session_ms}), so a late heartbeat or two does not end the session"
        )
    return KafkaSettings(
        partitions=reader.integer("CHAT4ALL_KAFKA_PARTITIONS", 6, minimum=1, maximum=1000),
        replication=reader.integer("CHAT4ALL_KAFKA_REPLICATION", 1, minimum=1, maximum=1000),
        topic_prefix=reader.name("CHAT4ALL_KAFKA_TOPIC_PREFIX", "", maximum=100),
        worker_group=reader.name("CHAT4ALL_WORKER_GROUP", "chat4all-worker", maximum=200),
        worker_instance_id=reader.name("CHAT4ALL_WORKER_INSTANCE_ID", "", maximum=200) or None,
        session_timeout=timedelta(milliseconds=session_ms),
        heartbeat_interval=timedelta(milliseconds=heartbeat_ms),
        rebalance_timeout=timedelta(
            milliseconds=reader.integer("CHAT4ALL_KAFKA_REBALANCE_TIMEOUT_MS", 30_000, minimum=1_000, maximum=1_800_000)
        ),
    )
