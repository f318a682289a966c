"""One table from kind of event to the handler that does its work, shared by every transport.

The in-process bus (embedded profile) and the Kafka worker (distributed profile) both consume the
streams `Dispatcher.streams` names and hand each batch they take from one stream to
`Dispatcher.handle`; which handlers a process runs is the composition root's choice. A transport
knows streams and payloads only, so a new kind of event (see `application.work`) needs a handler
in the table, not a change to either transport.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from chat4all.application.work import DeadLettered, WorkEvent, decode

log = logging.getLogger(__name__)

# The most events a transport hands to one run of a handler (the bus's batches, the worker's lanes').
MAX_BATCH = 128

Handler = Callable[[Sequence[Any]], Awaitable[None]]


@attrs.frozen
class Dispatcher:
    handlers: Mapping[type[WorkEvent], Handler]
    channels: tuple[str, ...]  # the deployment's channels: each has a delivery stream of its own

    def streams(self) -> list[str]:
        """The streams this process consumes: every stream of a kind it has a handler for."""
        return [stream for kind in self.handlers for stream in kind.streams(self.channels)]

    async def handle(self, stream: str, payloads: Sequence[Mapping[str, Any]]) -> None:
        """Runs the handler of the stream's kind once, on every event of the batch (in order).
        Raises MalformedEvent (an InvalidInput) if a payload is not such an event."""
        events = [decode(stream, payload) for payload in payloads]
        if events:
            await self.handlers[type(events[0])](events)


async def log_dead_letters(letters: Sequence[DeadLettered]) -> None:
    """Where nothing else keeps them (the embedded profile), dead letters go to the log."""
    for letter in letters:
        log.warning("dead letter: message %s on %s: %s", letter.message_id, letter.channel, letter.reason)
