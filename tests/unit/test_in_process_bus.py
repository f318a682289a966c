"""The embedded profile's bus: events of a topic in publish order, in batches under load, and one
event its handler rejects does not take the others down with it."""

from __future__ import annotations

import asyncio

from chat4all.adapters.bus import InProcessEventBus


async def drained(bus: InProcessEventBus) -> None:
    for _ in range(200):
        if bus.backlog() == 0:
            await asyncio.sleep(0.01)  # let the last batch's handler finish
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the bus did not drain")


async def test_events_that_queue_up_while_the_handler_is_busy_arrive_together_and_in_order():
    bus = InProcessEventBus(max_batch=4)
    batches: list[list[int]] = []
    busy = asyncio.Event()

    async def handle(payloads):
        batches.append([payload["n"] for payload in payloads])
        await busy.wait()

    bus.subscribe("t", handle)
    await bus.start()
    try:
        await bus.publish("t", "key", {"n": 0})
        await asyncio.sleep(0.01)  # the handler is busy with event 0 now
        for n in range(1, 10):
            await bus.publish("t", "key", {"n": n})
        busy.set()
        await drained(bus)
    finally:
        await bus.stop()
    assert batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]


async def test_a_failing_batch_is_retried_event_by_event_so_only_the_bad_one_is_lost():
    bus = InProcessEventBus()
    handled: list[int] = []
    gate = asyncio.Event()

    async def handle(payloads):
        await gate.wait()
        if any(payload["n"] == 2 for payload in payloads):
            raise ValueError("cannot take event 2")
        handled.extend(payload["n"] for payload in payloads)

    bus.subscribe("t", handle)
    await bus.start()
    try:
        for n in range(5):
            await bus.publish("t", "key", {"n": n})
        gate.set()
        await drained(bus)
    finally:
        await bus.stop()
    assert handled == [0, 1, 3, 4]
