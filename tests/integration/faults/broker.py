"""Kafka from the fault tests' side: a private broker to stop and start, a probe publishing
through the outage, and reading a topic's records (dead letters) from given offsets."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from pathlib import Path

from tests.integration.faults.servers import KAFKA, services
from tests.ports import low_port


class PrivateBroker:
    """A Kafka broker of the test's own, run by scripts/services.sh with a state directory and
    ports of its own: stopping it is an outage for this test alone, never for other runs sharing
    the servers of `scripts/services.sh up`."""

    def __init__(self, state_dir: Path):
        port, controller = low_port(), low_port()  # a broker restarted on its ports while clients retry them
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = {
            "CHAT4ALL_STATE_DIR": str(state_dir),
            "CHAT4ALL_KAFKA_PORT": str(port),
            "CHAT4ALL_KAFKA_CONTROLLER_PORT": str(controller),
        }

    async def start(self) -> float:
        started = time.monotonic()
        await asyncio.to_thread(services, "up", "kafka", env=self.env)
        return time.monotonic() - started

    async def stop(self) -> float:
        started = time.monotonic()
        await asyncio.to_thread(services, "down", "kafka", env=self.env)
        return time.monotonic() - started

    async def __aenter__(self) -> PrivateBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class PublishProbe:
    """Publishes without pause from a few concurrent loops through `KafkaEventPublisher`, the class
    the outbox relay and the workers publish with, so that batches are in flight whenever the
    broker goes away; records when publishing works again after it came back."""

    def __init__(self, bootstrap: str, topic: str, loops: int = 10):
        from chat4all.adapters.kafka import KafkaEventPublisher

        self.publisher = KafkaEventPublisher(bootstrap, client_id="faults-probe")
        self.topic = topic
        self.loops = loops
        self.sent: list[float] = []  # monotonic times of acknowledged sends
        self.errors: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> PublishProbe:
        await self.publisher.start()
        self._tasks = [asyncio.create_task(self._loop(index)) for index in range(self.loops)]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.publisher.stop()

    async def _loop(self, index: int) -> None:
        while True:
            try:
                await self.publisher.publish(self.topic, f"probe-{index}", {"probe": index})
                self.sent.append(time.monotonic())
                await asyncio.sleep(0.01)
            except Exception as error:
                self.errors[type(error).__name__] += 1
                await asyncio.sleep(0.1)

    async def recovered(self, since: float, timeout: float) -> float | None:
        """Seconds from `since` to the first acknowledged send after it, or None within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            first = bisect.bisect_left(self.sent, since)
            if first < len(self.sent):
                return self.sent[first] - since
            await asyncio.sleep(0.1)
        return None


async def end_offsets(topic: str) -> dict[int, int]:
    """partition -> end offset of an existing topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic, partition["partition"])
        for entry in described
        if entry["error_code"] == 0
        for partition in entry["partitions"]
    ]
    assert partitions, f"topic {topic} does not exist"
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def read_topic(topic: str, since: dict[int, int], timeout: float = 30.0) -> list[dict]:
    """Every record of `topic` from the offsets in `since` (partition -> offset) to its current end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from chat4all.adapters.kafka import decode_event

    until = await end_offsets(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, index) for index in until]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, since.get(tp.partition, 0))
        records: list[dict] = []
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < until[tp.partition]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end in {timeout}s"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += [decode_event(record.value) for record in batch]
        return records
    finally:
        await consumer.stop()
