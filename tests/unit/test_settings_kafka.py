"""The Kafka and worker settings: defaults chosen for recovery, and a bad value stops start-up
with a message naming the variable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat4all.entrypoints.settings import KafkaSettings, SettingsError, load_settings
from tests.unit.test_settings_s3 import DISTRIBUTED


def test_defaults_let_a_dead_worker_leave_the_group_within_seconds() -> None:
    kafka = load_settings(DISTRIBUTED).kafka
    assert kafka == KafkaSettings()
    assert (kafka.partitions, kafka.replication, kafka.topic_prefix) == (6, 1, "")
    assert (kafka.worker_group, kafka.worker_instance_id) == ("chat4all-worker", None)
    # A second worker takes a dead one's partitions after the session timeout, plus a heartbeat.
    assert kafka.session_timeout + kafka.heartbeat_interval <= timedelta(seconds=8)
    assert kafka.heartbeat_interval * 3 <= kafka.session_timeout


def test_every_kafka_setting_is_read() -> None:
    kafka = load_settings(
        {
            **DISTRIBUTED,
            "CHAT4ALL_KAFKA_PARTITIONS": "12",
            "CHAT4ALL_KAFKA_REPLICATION": "3",
            "CHAT4ALL_KAFKA_TOPIC_PREFIX": "staging.",
            "CHAT4ALL_WORKER_GROUP": "hub-workers",
            "CHAT4ALL_WORKER_INSTANCE_ID": "rack1-worker-3",
            "CHAT4ALL_KAFKA_SESSION_TIMEOUT_MS": "45000",
            "CHAT4ALL_KAFKA_HEARTBEAT_INTERVAL_MS": "15000",
            "CHAT4ALL_KAFKA_REBALANCE_TIMEOUT_MS": "90000",
        }
    ).kafka
    assert kafka == KafkaSettings(
        partitions=12,
        replication=3,
        topic_prefix="staging.",
        worker_group="hub-workers",
        worker_instance_id="rack1-worker-3",
        session_timeout=timedelta(seconds=45),
        heartbeat_interval=timedelta(seconds=15),
        rebalance_timeout=timedelta(seconds=90),
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CHAT4ALL_KAFKA_PARTITIONS", "0", "between 1 and 1000, got 0"),
        ("CHAT4ALL_KAFKA_PARTITIONS", "six", "whole number, got 'six'"),
        ("CHAT4ALL_KAFKA_REPLICATION", "-1", "between 1 and 1000"),
        ("CHAT4ALL_KAFKA_TOPIC_PREFIX", "my topics/", "only letters, digits"),
        ("CHAT4ALL_KAFKA_TOPIC_PREFIX", "p" * 101, "100 at most"),
        ("CHAT4ALL_WORKER_GROUP", "workers of hub", "only letters, digits"),
        ("CHAT4ALL_WORKER_INSTANCE_ID", "worker#1", "only letters, digits"),
        ("CHAT4ALL_KAFKA_SESSION_TIMEOUT_MS", "3000", "between 6000 and 1800000, got 3000"),
        ("CHAT4ALL_KAFKA_SESSION_TIMEOUT_MS", "10s", "whole number, got '10s'"),
        ("CHAT4ALL_KAFKA_HEARTBEAT_INTERVAL_MS", "50", "between 100 and 600000"),
        ("CHAT4ALL_KAFKA_REBALANCE_TIMEOUT_MS", "0", "between 1000 and 1800000"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({**DISTRIBUTED, name: value})
    assert str(raised.value).startswith(f"{name} ")
    assert says in str(raised.value)


def test_a_heartbeat_too_slow_for_the_session_names_both_variables() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({**DISTRIBUTED, "CHAT4ALL_KAFKA_HEARTBEAT_INTERVAL_MS": "3000"})
    message = str(raised.value)
    assert "CHAT4ALL_KAFKA_HEARTBEAT_INTERVAL_MS (3000)" in message
    assert "CHAT4ALL_KAFKA_SESSION_TIMEOUT_MS (6000)" in message
