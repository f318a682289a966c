"""The worker's event handling (adapters.kafka.lanes): per-key order, keys in parallel, batches,
ack after handling, retries.

These drive KeyLanes, handle_with_retry and handle_batch_with_retry with stand-in Faust events; the Kafka path
itself is covered end to end by test_worker_e2e.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest

from chat4all.adapters.kafka import lanes as worker_module
from chat4all.adapters.kafka.lanes import KeyLanes, handle_batch_with_retry, handle_with_retry
from chat4all.domain.errors import InvalidInput, Unavailable


class Message:
    def __init__(self, partition: int, offset: int):
        self.partition = partition
        self.offset = offset


class Event:
    def __init__(self, partition: int, offset: int, value: dict, key: bytes | None = None):
        self.message = Message(partition, offset)
        self.key = key
        self.value = value
        self.acked = False
        self.handled = False

    def ack(self) -> bool:
        assert self.handled, "acknowledged before it was handled"
        self.acked = True
        return True


def event(partition: int, offset: int, key: bytes | None = None) -> Event:
    value = {"message_id": str(uuid.uuid4()), "channel": "whatsapp", "offset": offset}
    return Event(partition, offset, value, key)


async def test_lanes_keep_each_keys_order_run_keys_in_parallel_and_ack_after_handling():
    keys = [str(uuid.uuid4()).encode() for _ in range(12)]
    partition_of = {key: index % 3 for index, key in enumerate(keys)}
    events = [event(partition_of[key], offset, key) for offset in range(15) for key in keys]
    by_id = {e.value["message_id"]: e for e in events}
    seen: dict[bytes, list[int]] = defaultdict(list)
    in_flight: dict[bytes, int] = defaultdict(int)
    overlaps = []
    running = 0
    peak = 0

    async def handle(topic, payloads):
        nonlocal running, peak
        targets = [by_id[payload["message_id"]] for payload in payloads]
        keys = {target.key for target in targets}
        for key in keys:
            in_flight[key] += 1
            if in_flight[key] > 1:
                overlaps.append(key)
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.003)
        for target in targets:
            seen[target.key].append(target.value["offset"])
            target.handled = True
        running -= 1
        for key in keys:
            in_flight[key] -= 1

    lanes = KeyLanes("whatsapp_outgoing", handle, lambda: False, width=8, depth=4)
    for each in events:
        await lanes.put(each)
    for _ in range(300):
        if all(each.acked for each in events):
            break
        await asyncio.sleep(0.01)
    await lanes.close()

    assert all(each.acked for each in events)
    assert overlaps == [], "two events of one key were handled at the same time"
    assert dict(seen) == {key: list(range(15)) for key in keys}, "a key's events were handled out of order"
    assert peak > 1, "different keys were not handled concurrently"


async def test_a_stuck_key_does_not_hold_up_other_keys_of_its_partition():
    release = asyncio.Event()
    handled = []
    stuck_key, other_key = b"conversation-a", b"conversation-b"
    lanes = KeyLanes("message_processing", None, lambda: False, width=16)  # type: ignore[arg-type]
    assert lanes.lane_of(event(0, 0, stuck_key)) != lanes.lane_of(event(0, 1, other_key))

    first, second = event(0, 0, stuck_key), event(0, 1, other_key)

    async def handle(topic, payloads):
        [payload] = payloads
        if payload["offset"] == 0:
            await release.wait()
        handled.append(payload["offset"])
        (first if payload["offset"] == 0 else second).handled = True

    lanes._handle = handle
    await lanes.put(first)
    await lanes.put(second)
    for _ in range(100):
        if second.acked:
            break
        await asyncio.sleep(0.01)
    assert second.acked and not first.acked
    release.set()
    for _ in range(100):
        if first.acked:
            break
        await asyncio.sleep(0.01)
    await lanes.close()
    assert handled == [1, 0]


async def test_closing_lanes_leaves_unhandled_events_unacknowledged():
    gate = asyncio.Event()

    async def handle(topic, payloads):
        await gate.wait()

    lanes = KeyLanes("message_processing", handle, lambda: False)
    pending = [event(0, offset, b"same-conversation") for offset in range(3)]
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


async def test_a_lane_hands_over_what_queued_while_it_was_busy_as_one_batch():
    gate = asyncio.Event()
    batches: list[list[int]] = []
    events = [event(0, offset, b"one-conversation") for offset in range(10)]

    async def handle(topic, payloads):
        batches.append([payload["offset"] for payload in payloads])
        if len(batches) == 1:
            await gate.wait()
        for payload in payloads:
            events[payload["offset"]].handled = True

    lanes = KeyLanes("whatsapp_outgoing", handle, lambda: False, width=4, depth=16, batch=4, linger=0)
    await lanes.put(events[0])
    await asyncio.sleep(0.01)  # the lane is busy with the first event
    for each in events[1:]:
        await lanes.put(each)
    await asyncio.sleep(0.01)
    assert batches == [[0]] and not any(each.acked for each in events)
    gate.set()
    for _ in range(100):
        if all(each.acked for each in events):
            break
        await asyncio.sleep(0.01)
    await lanes.close()
    assert batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert all(each.acked for each in events)


async def test_a_lane_lingers_briefly_for_more_events_unless_it_has_a_full_batch():
    batches: list[list[int]] = []
    events = [event(0, offset, b"one-conversation") for offset in range(7)]

    async def handle(topic, payloads):
        batches.append([payload["offset"] for payload in payloads])
        for payload in payloads:
            events[payload["offset"]].handled = True

    lanes = KeyLanes("whatsapp_outgoing", handle, lambda: False, width=1, depth=16, batch=4, linger=0.05)
    await lanes.put(events[0])
    await asyncio.sleep(0.01)
    await lanes.put(events[1])
    await asyncio.sleep(0.1)
    assert batches == [[0, 1]], "events that came while the lane lingered were not taken along"
    for each in events[2:]:
        await lanes.put(each)
    await asyncio.sleep(0.01)
    assert batches == [[0, 1], [2, 3, 4, 5]], "a full batch waited for the linger"
    await asyncio.sleep(0.1)
    await lanes.close()
    assert batches == [[0, 1], [2, 3, 4, 5], [6]]
    assert all(each.acked for each in events)


async def test_a_batch_is_retried_whole_while_a_dependency_is_away(monkeypatch):
    monkeypatch.setattr(worker_module, "RETRY_FIRST_DELAY", 0.001)
    attempts = []
    payloads = [{"message_id": str(uuid.uuid4()), "channel": "whatsapp"} for _ in range(3)]

    async def flaky(topic, batch):
        attempts.append(list(batch))
        if len(attempts) < 3:
            raise Unavailable("database is away")

    await handle_batch_with_retry(flaky, "whatsapp_outgoing", payloads, lambda: False)
    assert attempts == [payloads] * 3


async def test_a_batch_leaves_out_malformed_events_and_gives_up_when_the_worker_stops():
    calls = []
    good = {"message_id": str(uuid.uuid4())}

    async def broken(topic, batch):
        calls.append(list(batch))
        raise ConnectionError("database is away")

    with pytest.raises(ConnectionError):
        await handle_batch_with_retry(broken, "message_processing", [{"nope": 1}, good, good], lambda: True)
    assert calls == [[good, good]]
    await handle_batch_with_retry(broken, "message_processing", [{"nope": 1}], lambda: True)
    assert len(calls) == 1


async def test_a_batch_the_use_case_rejects_is_handled_one_by_one_so_only_the_bad_event_is_skipped():
    handled = []
    payloads = [{"message_id": str(uuid.uuid4()), "channel": channel} for channel in ("whatsapp", "fax", "whatsapp")]

    async def handle(topic, batch):
        if any(payload["channel"] == "fax" for payload in batch):
            raise InvalidInput("no such channel")
        handled.extend(batch)

    await handle_batch_with_retry(handle, "whatsapp_outgoing", payloads, lambda: False)
    assert handled == [payloads[0], payloads[2]]
