"""The channels messages leave through, and what operators count of the way there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

import attrs

from chat4all.domain.errors import PermanentDeliveryFailure, TransientDeliveryFailure
from chat4all.domain.messages import Message


@attrs.frozen
class SendResult:
    """How far one message got in `ChannelConnector.deliver_many`: its first `reached`
    recipients have it; `failure` is why the next one does not (None when all have it)."""

    reached: int
    failure: TransientDeliveryFailure | PermanentDeliveryFailure | None = None


class ChannelConnector(Protocol):
    name: str
    display_name: str

    async def deliver(self, message: Message, recipient_id: UUID) -> None:
        """Raises TransientDeliveryFailure or PermanentDeliveryFailure."""
        ...

    async def deliver_many(self, sends: Sequence[tuple[Message, Sequence[UUID]]]) -> list[SendResult]:
        """Sends each message to its recipients in order, stopping at a message's first delivery
        failure (the others' sends go on); one result per message, in order. Any other error
        (e.g. the connector's own storage being away) is raised, for the caller to retry the lot."""
        ...


class DeliveryMetrics(Protocol):
    """Counts what the pipeline does, for operators (e.g. a Prometheus endpoint)."""

    def message_accepted(self) -> None: ...

    def message_routed(self) -> None: ...

    def delivery_retried(self, channel: str) -> None: ...

    def channel_finished(self, channel: str, *, delivered: bool) -> None: ...

    def dead_lettered(self, channel: str) -> None: ...

    def message_finished(self, status: str, seconds_since_accepted: float) -> None: ...


class MetricsReport(Protocol):
    """What operators read of those counts, in the exposition format the metrics adapter speaks."""

    def render(self, *, outbox_backlog: int | None = None) -> bytes: ...


class NoMetrics:
    def message_accepted(self) -> None: ...

    def message_routed(self) -> None: ...

    def delivery_retried(self, channel: str) -> None: ...

    def channel_finished(self, channel: str, *, delivered: bool) -> None: ...

    def dead_lettered(self, channel: str) -> None: ...

    def message_finished(self, status: str, seconds_since_accepted: float) -> None: ...
