"""Faust builds its Kafka consumer with a 1.5 s fetch wait, which made every hop through Kafka
take seconds under load (see `adapters.kafka.faust_transport`); the worker's consumer must get
the configured wait instead, and its fetcher must long-poll when that costs no latency (the
behaviour itself is checked against the broker in tests/integration/test_kafka_fetch_wait.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiokafka
import pytest
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka

from chat4all.adapters.kafka import faust_transport
from chat4all.adapters.kafka.faust_transport import LowLatencyApp


def app(tmp_path) -> LowLatencyApp:
    return LowLatencyApp(
        "fetch-wait-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path), web_enabled=False, fetch_max_wait_ms=7
    )


async def test_the_worker_consumer_waits_only_the_configured_time_for_records(tmp_path) -> None:
    worker = app(tmp_path)

    consumer = worker.consumer._thread._create_worker_consumer(worker.transport)

    assert consumer._fetch_max_wait_ms == 7


async def test_the_worker_consumer_long_polls_when_its_fetch_covers_every_partition(tmp_path, monkeypatch) -> None:
    worker = app(tmp_path)
    thread = worker.consumer._thread
    fetcher = SimpleNamespace(_get_actions_per_node=lambda assignment: ([], {}, 0.2, False, []))
    adapted = []

    async def started(self) -> None:
        self._consumer = SimpleNamespace(_fetcher=fetcher)

    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "on_start", started)
    monkeypatch.setattr(faust_transport, "short_wait_only_for_partial_fetches", adapted.append)

    await thread.on_start()

    assert adapted == [fetcher]


def test_the_aiokafka_internals_the_fetch_waits_rely_on_are_there() -> None:
    faust_transport.require_aiokafka_internals()  # the pinned aiokafka


class FetcherWithoutReplicaChoice:  # as if an aiokafka release had renamed `_select_read_replica`
    def _get_actions_per_node(self, assignment):
        return [], {}, 0.2, False, []


class RequestKeepingItsWaitElsewhere:  # as if `_max_wait_ms` had been renamed
    def __init__(self, max_wait_time: int) -> None:
        self._wait = max_wait_time

    @property
    def topics(self) -> list:
        return []

    def build(self, struct: Any) -> Any:
        return struct(self._wait)


@pytest.mark.parametrize(
    ("replaced", "named"),
    [
        ({"fetcher": FetcherWithoutReplicaChoice}, "FetcherWithoutReplicaChoice._select_read_replica"),
        (
            {"request": RequestKeepingItsWaitElsewhere},
            "RequestKeepingItsWaitElsewhere._max_wait_ms (as read by RequestKeepingItsWaitElsewhere.build)",
        ),
    ],
)
def test_a_missing_aiokafka_internal_fails_loudly_naming_it_and_the_version(replaced, named) -> None:
    with pytest.raises(faust_transport.AiokafkaInternalsChanged) as raised:
        faust_transport.require_aiokafka_internals(**replaced)

    message = str(raised.value)
    assert f"aiokafka {aiokafka.__version__} has no {named}," in message
    assert "chat4all.adapters.kafka.faust_transport" in message


def test_the_worker_app_is_not_built_on_an_aiokafka_without_them(tmp_path, monkeypatch) -> None:
    monkeypatch.delattr(Fetcher, "_select_read_replica")

    with pytest.raises(faust_transport.AiokafkaInternalsChanged, match=r"has no Fetcher\._select_read_replica"):
        app(tmp_path)
