"""How the worker hands Kafka events to the dispatcher: lanes by key, batches, acks, retries.

Within an agent (one per consumed topic), events are spread over a fixed set of lanes by their key
(the conversation id): a lane handles one batch at a time - every event queued on it when it becomes
free, in arrival order, as one run of the handler - and lanes run concurrently (`KeyLanes`). So a
conversation's events keep their order, a slow or busy conversation does not hold up the others in
its partition, and the busier the worker, the larger its batches and the cheaper each event. An
event is acknowledged only once handled, and Faust commits a partition's offsets only up to its
first unacknowledged event (at-least-once); the handlers are idempotent, so an event seen twice
after a crash or rebalance does no harm.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from chat4all.application.dispatch import MAX_BATCH
from chat4all.application.work import MalformedEvent, decode
from chat4all.domain.errors import DomainError, Unavailable

log = logging.getLogger("chat4all.worker")

RETRY_FIRST_DELAY = 0.1
RETRY_MAX_DELAY = 5.0
# Events a lane queues; a full lane makes the agent wait, which leaves the backlog in Kafka.
LANE_DEPTH = 256
# Lanes per agent. With deliver-while-routing (the default) the routing agent's lanes carry nearly
# all the work, so up to 2 batches are in flight; without it, up to 6 across the three agents.
# Fewer lanes make larger batches under load (each batch costs a few statements, whatever its size).
LANES_PER_AGENT = 2
# How long a lane that has fewer than MAX_BATCH events waits for more before handling them. Faust
# hands events over one at a time, a few event-loop turns each, and a lane waiting (instead of
# running small batches back to back) leaves it those turns: batches grow, cost per event falls.
BATCH_LINGER = 0.02

Handler = Callable[[str, Mapping[str, Any]], Awaitable[None]]
BatchHandler = Callable[[str, Sequence[Mapping[str, Any]]], Awaitable[None]]


def well_formed(stream: str, payload: Any) -> bool:
    try:
        decode(stream, payload)
    except MalformedEvent:
        return False
    return True


async def retry_until_handled(
    run: Callable[[], Awaitable[None]], what: str, stopping: Callable[[], bool]
) -> DomainError | None:
    """Runs a handler until it succeeds, or until it rejects its input (returned, not raised).

    A failure here is the database, storage or broker being away (connector failures are
    already retried and recorded by the use case), and giving up would strand messages, so the
    lane waits and retries with backoff. While the worker shuts down, the failure is raised
    instead, and the messages' state in the database is left as it was.
    """
    delay = RETRY_FIRST_DELAY
    while True:
        try:
            await run()
            return None
        except DomainError as error:
            if not isinstance(error, Unavailable):
                return error
            failure: Exception = error
        except Exception as error:
            failure = error
        if stopping():
            raise failure
        log.warning("handling %s failed (%s: %s); retrying in %.1fs", what, type(failure).__name__, failure, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_DELAY)


async def handle_with_retry(handle: Handler, topic: str, payload: Any, stopping: Callable[[], bool]) -> None:
    """Runs one event's handler until it succeeds (`retry_until_handled`). A malformed event, or
    one the use case rejects as invalid, is logged and skipped."""
    if not well_formed(topic, payload):
        log.error("skipping malformed event on %s: %r", topic, payload)
        return
    what = f"{topic} event for message {payload['message_id']}"
    rejected = await retry_until_handled(lambda: handle(topic, payload), what, stopping)
    if rejected is not None:
        log.error("skipping event on %s rejected by the use case (%s): %r", topic, rejected.detail, payload)


async def handle_batch_with_retry(
    handle: BatchHandler, topic: str, payloads: Sequence[Any], stopping: Callable[[], bool]
) -> None:
    """`handle_with_retry` for a batch of events, handled as one run of the handler.

    Malformed events are logged and left out. If the use case rejects the batch as invalid, its
    events are handled one at a time, so only the offending one is skipped.
    """
    batch = []
    for payload in payloads:
        if well_formed(topic, payload):
            batch.append(payload)
        else:
            log.error("skipping malformed event on %s: %r", topic, payload)

    async def one_by_one(topic: str, payload: Any) -> None:
        await handle(topic, [payload])

    if len(batch) == 1:
        await handle_with_retry(one_by_one, topic, batch[0], stopping)
        return
    if not batch:
        return
    rejected = await retry_until_handled(lambda: handle(topic, batch), f"{len(batch)} {topic} events", stopping)
    if rejected is not None:
        for payload in batch:
            await handle_with_retry(one_by_one, topic, payload, stopping)


class KeyLanes:
    """Handles events with the same key in order and never two at once; events with other keys concurrently.

    A fixed number of lanes, each a queue and a task; an event goes to the lane its key hashes
    to (events without a key go by partition). A lane takes everything queued on it (up to
    `batch` events) and hands it to the handler as one batch, so batches grow with the load
    instead of events waiting for one another. Each event is acknowledged only once its batch is
    done, so its offset is committed only then; acknowledgements may come out of offset order
    across lanes, and Faust commits only up to a partition's first unacknowledged offset. A full
    lane makes the agent wait, which leaves the backlog in Kafka.
    """

    def __init__(
        self,
        topic: str,
        handle: BatchHandler,
        stopping: Callable[[], bool],
        *,
        width: int = LANES_PER_AGENT,
        depth: int = LANE_DEPTH,
        batch: int = MAX_BATCH,
        linger: float = BATCH_LINGER,
    ) -> None:
        self.topic = topic
        self._handle = handle
        self._stopping = stopping
        self._width = width
        self._depth = depth
        self._batch = batch
        self._linger = linger
        self._lanes: dict[int, tuple[asyncio.Queue[Any], asyncio.Task[None]]] = {}

    def lane_of(self, event: Any) -> int:
        key = event.key
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not key:
            return event.message.partition % self._width
        return zlib.crc32(key) % self._width

    async def put(self, event: Any) -> None:
        index = self.lane_of(event)
        lane = self._lanes.get(index)
        if lane is None or lane[1].done():
            queue: asyncio.Queue[Any] = asyncio.Queue(self._depth)
            task = asyncio.create_task(self._run(queue), name=f"{self.topic}-lane-{index}")
            lane = self._lanes[index] = (queue, task)
        await lane[0].put(event)

    async def _run(self, queue: asyncio.Queue[Any]) -> None:
        while True:
            events = [await queue.get()]
            if self._linger and queue.qsize() + 1 < self._batch:
                await asyncio.sleep(self._linger)
            while len(events) < self._batch and not queue.empty():
                events.append(queue.get_nowait())
            await handle_batch_with_retry(self._handle, self.topic, [event.value for event in events], self._stopping)
            for event in events:
                event.ack()

    async def close(self) -> None:
        """Stops the lanes; events not handled yet stay unacknowledged and will be redelivered."""
        tasks = [task for _, task in self._lanes.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()
