"""The worker's event handling: per-partition order, parallel partitions, ack after handling, retries.

These drive PartitionLanes and handle_with_retry with stand-in Faust events; the Kafka path
itself is covered end to end by test_worker_e2e.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest

from chat4all.domain.errors import InvalidInput, Unavailable
from chat4all.entrypoints import worker as worker_module
from chat4all.entrypoints.worker import PartitionLanes, handle_with_retry


class Message:
    def __init__(self, partition: int, offset: int):
        self.partition = partition
        self.offset = offset


class Event:
    def __init__(self, partition: int, offset: int, value: dict):
        self.message = Message(partition, offset)
        self.value = value
        self.acked = False
        self.handled = False

    def ack(self) -> bool:
        assert self.handled, "acknowledged before it was handled"
        self.acked = True
        return True


def event(partition: int, offset: int) -> Event:
    return Event(partition, offset, {"message_id": str(uuid.uuid4()), "channel": "whatsapp", "offset": offset})


async def test_lanes_keep_partition_order_run_partitions_in_parallel_and_ack_after_handling():
    seen: dict[int, list[int]] = defaultdict(list)
    running = 0
    peak = 0
    in_flight: dict[int, int] = defaultdict(int)
    events = [event(partition, offset) for offset in range(20) for partition in range(4)]
    by_id = {e.value["message_id"]: e for e in events}

    async def handle(topic, payload):
        nonlocal running, peak
        target = by_id[payload["message_id"]]
        partition = target.message.partition
        in_flight[partition] += 1
        assert in_flight[partition] == 1, "one partition had two events in flight"
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        seen[partition].append(payload["offset"])
        target.handled = True
        running -= 1
        in_flight[partition] -= 1

    lanes = PartitionLanes("whatsapp_outgoing", handle, lambda: False, depth=4)
    for each in events:
        await lanes.put(each)
    for _ in range(200):
        if all(each.acked for each in events):
            break
        await asyncio.sleep(0.01)
    await lanes.close()

    assert all(each.acked for each in events)
    assert {partition: offsets for partition, offsets in seen.items()} == {p: list(range(20)) for p in range(4)}
    assert peak > 1, "partitions were not handled concurrently"


async def test_closing_lanes_leaves_unhandled_events_unacknowledged():
    gate = asyncio.Event()

    async def handle(topic, payload):
        await gate.wait()

    lanes = PartitionLanes("message_processing", handle, lambda: False)
    pending = [event(0, offset) for offset in range(3)]
    for each in pending:
        await lanes.put(each)
    await asyncio.sleep(0.01)
    await lanes.close()
    assert not any(each.acked for each in pending)


async def test_handling_retries_while_a_dependency_is_away(monkeypatch):
    monkeypatch.setattr(worker_module, "RETRY_FIRST_DELAY", 0.001)
    attempts = []

    async def flaky(topic, payload):
        attempts.append(payload)
        if len(attempts) < 3:
            raise (Unavailable("database is away") if len(attempts) == 1 else ConnectionError("reset"))

    await handle_with_retry(
        flaky, "whatsapp_outgoing", {"message_id": str(uuid.uuid4()), "channel": "whatsapp"}, lambda: False
    )
    assert len(attempts) == 3


async def test_handling_gives_up_when_the_worker_stops():
    async def broken(topic, payload):
        raise ConnectionError("database is away")

    with pytest.raises(ConnectionError):
        await handle_with_retry(broken, "message_processing", {"message_id": str(uuid.uuid4())}, lambda: True)


@pytest.mark.parametrize(
    "topic, payload",
    [
        ("message_processing", {"nope": 1}),
        ("message_processing", {"message_id": "not-a-uuid"}),
        ("whatsapp_outgoing", {"message_id": str(uuid.uuid4())}),  # no channel
        ("message_processing", ["not", "a", "mapping"]),
    ],
)
async def test_malformed_events_are_skipped(topic, payload):
    calls = []

    async def handle(topic, payload):
        calls.append(payload)

    await handle_with_retry(handle, topic, payload, lambda: False)
    assert calls == []


async def test_events_a_use_case_rejects_are_skipped_not_retried():
    calls = []

    async def reject(topic, payload):
        calls.append(payload)
        raise InvalidInput("no such channel")

    await handle_with_retry(
        reject, "whatsapp_outgoing", {"message_id": str(uuid.uuid4()), "channel": "fax"}, lambda: False
    )
    assert len(calls) == 1
