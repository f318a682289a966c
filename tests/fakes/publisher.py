from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chat4all.application.ports import OutboxEvent


class RecordingPublisher:
    """An event bus that keeps everything published, in order; it can be told to fail."""

    def __init__(self) -> None:
        self.events: list[OutboxEvent] = []
        self._failures_left = 0

    def fail_next(self, times: int = 1) -> None:
        self._failures_left = times

    async def publish(self, topic: str, key: str, payload: Mapping[str, Any]) -> None:
        await self.publish_batch([OutboxEvent(topic, key, dict(payload))])

    async def publish_batch(self, events: Sequence[OutboxEvent]) -> None:
        if self._failures_left > 0:
            self._failures_left -= 1
            raise ConnectionError("the event bus is unavailable")
        self.events.extend(events)

    def on(self, topic: str) -> list[OutboxEvent]:
        return [event for event in self.events if event.topic == topic]
