"""KafkaEventPublisher and topic administration against the real broker from scripts/services.sh.

Each test works on topics of its own (random names), deleted afterwards. An unreachable broker
fails the tests; it is never a reason to skip them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from chat4all.adapters.kafka import KafkaEventPublisher, check_broker, commit_end_offsets, decode_event, ensure_topics
from chat4all.application.ports import OutboxEvent
from tests.integration.kafka_fixtures import require_broker
from tests.ports import low_port

pytestmark = pytest.mark.services



@pytest.fixture
async def bootstrap() -> str:
    return await require_broker()


@pytest.fixture
async def fresh_topics(bootstrap):
    """Makes unique topic names and deletes whatever of them exists at the end."""
    names: list[str] = []

    def make(count: int = 1) -> list[str]:
        made = [f"test-c4a-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        names.extend(made)
        return made

    yield make
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        present = set(await admin.list_topics())
        doomed = [name for name in names if name in present]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


@pytest.fixture
async def publisher(bootstrap):
    publisher = KafkaEventPublisher(bootstrap, client_id="chat4all-test")
    await publisher.start()
    yield publisher
    await publisher.stop()


async def partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {entry["topic"]: len(entry["partitions"]) for entry in await admin.describe_topics(topics)}
    finally:
        await admin.close()


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 10.0) -> list:
    """Every record of `topic` from the beginning, with no consumer group involved."""
    count = (await partition_counts(bootstrap, [topic]))[topic]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        records = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


async def test_publish_batch_returns_after_every_event_is_stored_in_order_per_key(bootstrap, publisher, fresh_topics):
    [topic] = fresh_topics()
    assert await ensure_topics(bootstrap, [topic], partitions=3) == [topic]
    keys = [str(uuid.uuid4()) for _ in range(5)]
    events = [OutboxEvent(topic, keys[i % len(keys)], {"message_id": str(uuid.uuid4()), "seq": i}) for i in range(200)]

    await publisher.publish_batch(events)

    # publish_batch returned, so every event is already on the broker: the end offsets add up.
    records = await read_all(bootstrap, topic, len(events))
    assert len(records) == len(events)
    by_key: dict[str, list[int]] = defaultdict(list)
    partition_of: dict[str, set[int]] = defaultdict(set)
    for record in records:
        key = record.key.decode("utf-8")
        payload = decode_event(record.value)
        by_key[key].append(payload["seq"])
        partition_of[key].add(record.partition)
        assert payload == {"message_id": events[payload["seq"]].payload["message_id"], "seq": payload["seq"]}
    assert set(by_key) == set(keys)
    for index, key in enumerate(keys):
        assert by_key[key] == list(range(index, len(events), len(keys))), "a key's events came out of order"
        assert len(partition_of[key]) == 1, "a key's events were spread over partitions"


async def test_publish_single_event_and_readiness_check(bootstrap, publisher, fresh_topics):
    [topic] = fresh_topics()
    await ensure_topics(bootstrap, [topic], partitions=2)
    conversation_id = str(uuid.uuid4())
    await publisher.publish(topic, conversation_id, {"message_id": "m-1", "channel": "whatsapp"})
    await publisher.check()
    [record] = await read_all(bootstrap, topic, 1)
    assert record.key == conversation_id.encode()
    assert decode_event(record.value) == {"message_id": "m-1", "channel": "whatsapp"}


async def test_topic_prefix_keeps_a_deployments_events_in_its_own_topics(bootstrap, fresh_topics):
    [prefixed] = fresh_topics()
    prefix, name = prefixed[:-8], prefixed[-8:]
    await ensure_topics(bootstrap, [prefixed], partitions=1)
    publisher = KafkaEventPublisher(bootstrap, topic_prefix=prefix)
    await publisher.start()
    try:
        await publisher.publish(name, "k", {"message_id": "one"})
        await publisher.publish_batch([OutboxEvent(name, "k", {"message_id": "two"})])
    finally:
        await publisher.stop()
    records = await read_all(bootstrap, prefixed, 2)
    assert [decode_event(record.value)["message_id"] for record in records] == ["one", "two"]


async def test_empty_batch_is_a_no_op(publisher):
    await publisher.publish_batch([])


async def test_ensure_topics_creates_missing_topics_once_with_the_partition_count(bootstrap, fresh_topics):
    first, second = fresh_topics(2)
    assert sorted(await ensure_topics(bootstrap, [first, second], partitions=4)) == sorted([first, second])
    assert await ensure_topics(bootstrap, [first, second], partitions=4) == []
    assert await partition_counts(bootstrap, [first, second]) == {first: 4, second: 4}

    # Concurrent callers (say `migrate` and a worker starting) both succeed; one of them creates it.
    [third] = fresh_topics()
    outcomes = await asyncio.gather(*(ensure_topics(bootstrap, [first, third], partitions=2) for _ in range(3)))
    assert sum(outcome.count(third) for outcome in outcomes) <= 1
    assert all(first not in outcome for outcome in outcomes)
    assert await partition_counts(bootstrap, [first, third]) == {first: 4, third: 2}


async def test_a_group_started_at_the_end_sees_only_later_events(bootstrap, publisher, fresh_topics):
    [topic] = fresh_topics()
    await ensure_topics(bootstrap, [topic], partitions=3)
    await publisher.publish_batch([OutboxEvent(topic, f"k{i}", {"message_id": f"old-{i}"}) for i in range(6)])
    group = f"test-c4a-group-{uuid.uuid4().hex[:8]}"
    await commit_end_offsets(bootstrap, group, [topic])
    await publisher.publish_batch([OutboxEvent(topic, f"k{i}", {"message_id": f"new-{i}"}) for i in range(4)])

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen: list[str] = []
        deadline = asyncio.get_running_loop().time() + 15
        while len(seen) < 4 and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [decode_event(record.value)["message_id"] for record in records]
        await asyncio.sleep(0.5)
        for records in (await consumer.getmany(timeout_ms=200)).values():
            seen += [decode_event(record.value)["message_id"] for record in records]
    finally:
        await consumer.stop()
    assert sorted(seen) == [f"new-{i}" for i in range(4)]


async def test_unreachable_broker_fails_publish_and_check_instead_of_hanging():
    publisher = KafkaEventPublisher(f"127.0.0.1:{low_port()}", request_timeout_ms=2000, check_timeout=1.0)
    await publisher.start()  # logs and carries on: the API may start during a broker outage
    try:
        with pytest.raises(Exception):
            await asyncio.wait_for(publisher.publish_batch([OutboxEvent("t", "k", {"message_id": "x"})]), 10)
        with pytest.raises(Exception):
            await asyncio.wait_for(publisher.check(), 5)
        with pytest.raises(Exception):
            await check_broker(f"127.0.0.1:{low_port()}", timeout=1.0)
    finally:
        await publisher.stop()
