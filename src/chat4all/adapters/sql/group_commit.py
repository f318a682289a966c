"""Group commit for the message intake: requests that arrive while earlier batches are being
stored wait, and go together in the next batch.

With fewer than `max_in_flight` batches being stored, a message goes at once, alone: at low load
nothing waits. Under load the queue fills while the database works, and the next batch takes up
to `max_batch` messages: the round trips, the commit and the driver's fixed costs are paid once
per batch instead of once per message. Messages of one batch keep the order their requests came in.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import attrs

from chat4all.application.ports import OutboxEvent
from chat4all.domain.conversations import Conversation
from chat4all.domain.errors import InvalidInput
from chat4all.domain.messages import Message

log = logging.getLogger(__name__)


@attrs.define
class PendingAccept:
    """One request's message, waiting for the batch that stores it."""

    message: Message
    conversation: Conversation
    routing: OutboxEvent
    outcome: asyncio.Future[bool]


class GroupCommitIntake:
    """A `MessageIntake` that stores messages in batches through `store_batch`.

    `store_batch` gets messages with distinct ids and returns the ids it stored (an id that
    exists already is not stored again). A later request for an id already in the same batch
    is answered "not new", as a request arriving after the first one committed would be. If a
    batch is refused as invalid, its messages are stored again one by one, so only the faulty
    request fails; any other failure (the database is away) fails the whole batch.
    """

    def __init__(self, *, max_in_flight: int, max_batch: int) -> None:
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._waiting: list[PendingAccept] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def store_batch(self, batch: list[PendingAccept]) -> set[UUID]:
        raise NotImplementedError

    async def accept(self, message: Message, conversation: Conversation, routing: OutboxEvent) -> bool:
        item = PendingAccept(message, conversation, routing, asyncio.get_running_loop().create_future())
        self._waiting.append(item)
        self._send_waiting()
        inserted = await item.outcome
        message.new_events.clear()
        return inserted

    def _send_waiting(self) -> None:
        while self._waiting and len(self._in_flight) < self._max_in_flight:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            task = asyncio.create_task(self._store(batch), name="message-intake")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._send_waiting()

    async def _store(self, batch: list[PendingAccept]) -> None:
        """Settles every request of the batch: stored (True), not new (False) or its own error."""
        first_of_id: dict[UUID, PendingAccept] = {}
        for item in batch:
            first_of_id.setdefault(item.message.id, item)
        unique = list(first_of_id.values())
        try:
            try:
                stored = await self.store_batch(unique)
                outcomes: list[bool | BaseException] = [item.message.id in stored for item in unique]
            except InvalidInput:
                if len(unique) == 1:
                    raise
                log.info("a batch of %d messages was refused; storing them one by one", len(unique))
                outcomes = [await self._store_alone(item) for item in unique]
        except BaseException as error:  # the database is away, or this task is cancelled: every request learns it
            for item in batch:
                _settle(item, error)
            if not isinstance(error, Exception):
                raise
            return
        for item, outcome in zip(unique, outcomes, strict=True):
            _settle(item, outcome)
        for item in batch:  # later requests for an id already in this batch are not new
            _settle(item, False)

    async def _store_alone(self, item: PendingAccept) -> bool | BaseException:
        try:
            return item.message.id in await self.store_batch([item])
        except Exception as error:
            return error


def _settle(item: PendingAccept, outcome: bool | BaseException) -> None:
    if item.outcome.done():  # answered already, or the request was cancelled
        return
    if isinstance(outcome, asyncio.CancelledError):
        item.outcome.cancel()
    elif isinstance(outcome, BaseException):
        item.outcome.set_exception(outcome)
    else:
        item.outcome.set_result(outcome)
