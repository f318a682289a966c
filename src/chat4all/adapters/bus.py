"""The embedded profile's event bus: one in-process queue and consumer per topic.

One consumer per topic keeps a topic's events in publish order, as a single Kafka
partition would; the handler of every topic is the process's dispatcher, as in the Kafka worker. A handler gets every
event that queued up while it was busy (up to `max_batch`) at once, so under load the use
cases work in batches, as the worker's lanes give them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from chat4all.application.dispatch import MAX_BATCH
from chat4all.application.ports import OutboxEvent

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[Mapping[str, Any]]], Awaitable[None]]


class InProcessEventBus:
    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._max_batch = max_batch
        self._queues: dict[str, asyncio.Queue[Mapping[str, Any]]] = {}
        self._handlers: dict[str, Handler] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic] = handler
        self._queues.setdefault(topic, asyncio.Queue())

    async def publish(self, topic: str, key: str, payload: Mapping[str, Any]) -> None:
        queue = self._queues.get(topic)
        if queue is None:
            raise LookupError(f"no subscriber for topic {topic!r}")
        queue.put_nowait(payload)

    async def publish_batch(self, events: Sequence[OutboxEvent]) -> None:
        for event in events:
            await self.publish(event.topic, event.key, event.payload)

    def backlog(self) -> int:
        return sum(queue.qsize() for queue in self._queues.values())

    async def start(self) -> None:
        for topic, handler in self._handlers.items():
            self._tasks.append(asyncio.create_task(self._consume(topic, handler), name=f"consume-{topic}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _consume(self, topic: str, handler: Handler) -> None:
        queue = self._queues[topic]
        while True:
            batch = [await queue.get()]
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await handler(batch)
            except Exception:
                if len(batch) == 1:
                    # The event stays recorded in the database; the periodic sweep re-drives it.
                    log.exception("handler for %s failed on %s", topic, batch[0])
                    continue
                log.warning("handler for %s failed on a batch of %d; handling them one by one", topic, len(batch))
                for payload in batch:  # one event the use case cannot take must not hold up the others
                    try:
                        await handler([payload])
                    except Exception:
                        log.exception("handler for %s failed on %s", topic, payload)
