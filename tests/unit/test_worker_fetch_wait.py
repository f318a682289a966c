"""Faust builds its Kafka consumer with a 1.5 s fetch wait, which made every hop through Kafka
take seconds under load (see `adapters.kafka.faust_transport`); the worker's consumer must get
the configured wait instead."""

from __future__ import annotations

from chat4all.adapters.kafka.faust_transport import LowLatencyApp


async def test_the_worker_consumer_waits_only_the_configured_time_for_records(tmp_path) -> None:
    app = LowLatencyApp(
        "fetch-wait-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path), web_enabled=False, fetch_max_wait_ms=7
    )

    consumer = app.consumer._thread._create_worker_consumer(app.transport)

    assert consumer._fetch_max_wait_ms == 7
