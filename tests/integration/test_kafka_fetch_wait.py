"""The worker's fetch waits against the real broker from scripts/services.sh: an idle consumer
long-polls instead of fetching every few milliseconds, and a record is still handed over at once,
whether the consumer was idle or had left a partition out of its fetches.

Each test works on a topic of its own (random name), deleted afterwards. An unreachable broker
fails the tests; it is never a reason to skip them.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from chat4all.adapters.kafka import ensure_topics
from chat4all.adapters.kafka.faust_transport import short_wait_only_for_partial_fetches
from tests.integration.kafka_fixtures import BOOTSTRAP, require_broker

pytestmark = pytest.mark.services

SHORT_MS = 10
# Far longer than any hand-over below may take, so a record that waited for it shows.
COMPLETE_MS = 6000
HAND_OVER_LIMIT = 2.5


@pytest.fixture
async def topic():
    await require_broker()
    name = f"test-c4a-{uuid.uuid4().hex[:12]}"
    await ensure_topics(BOOTSTRAP, [name], partitions=2, replication_factor=1)
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.fixture
async def producer():
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0)
    await producer.start()
    yield producer
    await producer.stop()


class Fetches:
    """Records the wait and the partitions of every fetch request the consumer sends."""

    def __init__(self, fetcher) -> None:
        self.sent: list[tuple[int, int]] = []
        send = fetcher._proc_fetch_request

        async def recorded(assignment, node_id, request):
            self.sent.append((request._max_wait_ms, sum(len(partitions) for _, partitions in request.topics)))
            return await send(assignment, node_id, request)

        fetcher._proc_fetch_request = recorded


async def started_consumer(topic: str) -> tuple[AIOKafkaConsumer, Fetches, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, fetch_max_wait_ms=SHORT_MS, enable_auto_commit=False)
    await consumer.start()
    short_wait_only_for_partial_fetches(consumer._fetcher, COMPLETE_MS)
    fetches = Fetches(consumer._fetcher)
    partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    return consumer, fetches, partitions


async def hand_over_time(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, tp: TopicPartition) -> float:
    await (await producer.send(tp.topic, b"x", partition=tp.partition))
    sent = time.monotonic()
    records = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=int(HAND_OVER_LIMIT * 2000)), HAND_OVER_LIMIT * 3)
    assert records.get(tp), "the record never came"
    return time.monotonic() - sent


async def test_an_idle_consumer_long_polls_and_still_gets_a_new_record_at_once(topic, producer) -> None:
    consumer, fetches, partitions = await started_consumer(topic)
    try:
        await asyncio.sleep(1.5)
        idle = list(fetches.sent)

        took = await hand_over_time(consumer, producer, partitions[1])
    finally:
        await consumer.stop()

    # With the short wait on every fetch, an idle second costs about 1000 / SHORT_MS fetches.
    assert 1 <= len(idle) <= 3, idle
    assert all(wait == COMPLETE_MS for wait, _ in idle), idle
    assert took < HAND_OVER_LIMIT, f"a record waited {took:.2f}s for a long-polling fetch"


async def test_a_fetch_that_leaves_a_partition_out_waits_only_briefly(topic, producer) -> None:
    consumer, fetches, partitions = await started_consumer(topic)
    first, second = partitions
    try:
        await asyncio.sleep(0.3)
        # A record on the first partition that nobody takes yet: aiokafka keeps it buffered and,
        # after a short back-off, fetches the second partition alone.
        await (await producer.send(topic, b"held", partition=first.partition))
        await asyncio.sleep(0.6)
        partial = [wait for wait, count in fetches.sent if count == 1]
        assert await consumer.getmany(first, timeout_ms=1000)

        # A new record on the partition that was left out must not wait for the partial fetch.
        took = await hand_over_time(consumer, producer, first)
    finally:
        await consumer.stop()

    assert partial, f"no fetch left a partition out: {fetches.sent}"
    assert set(partial) == {SHORT_MS}, fetches.sent
    assert took < HAND_OVER_LIMIT, f"a record waited {took:.2f}s behind a fetch that left its partition out"
