"""Faust's Kafka transport with a short broker-side fetch wait.

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500`, and that wait shows up as
latency: aiokafka leaves the partitions whose records are still being handled out of its next
fetch, and records arriving on those partitions can then sit in the broker until that fetch's
wait runs out. Measured with `benchmarks.messages --mode open --rate 200` (same commit, only the
wait changed): accept->delivered p50/p95 312/1,082 ms with 1500 ms, 236/571 ms with 10 ms; on a
worker that was just keeping up, each hop's median went from 1.6 s to 0.06 s. A short wait costs
an idle worker one small fetch per wait, which is cheap next to that.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

DEFAULT_FETCH_MAX_WAIT_MS = 10


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts, which is after it is created here.
        consumer._fetch_max_wait_ms = transport.app.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class LowLatencyApp(faust.App):
    """A `faust.App` whose Kafka consumer waits at most `fetch_max_wait_ms` in each fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = DEFAULT_FETCH_MAX_WAIT_MS, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
