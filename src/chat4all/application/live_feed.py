"""One live connection's feed (Server-Sent Events, WebSocket): a user's stored events from a
cursor, in seq order, and the ephemeral ones (`typing`) as they come.

The log is the buffer. A pump reads the log after the cursor, a page at a time, into a bounded
queue of frames, and the transport takes frames from the queue as fast as its client reads
them; the pump reads again when woken (the notifier), or nudged (`nudge`: a periodic check of
where the users' logs end found events this feed has not read), or every `recheck` seconds
anyway, so a lost wake-up delays an event and never loses it. A client that is behind costs no memory: what
it has not read stays in the log. One whose queue stays full for `slow_client` seconds has
stopped reading: its feed ends with a `Resync` (`too_slow`), and it reconnects and resumes from
the last seq it received, missing nothing. A cursor older than what the log keeps ends the feed
with a `Resync` (`cursor_expired`): the client reloads over REST and resumes from `resume_from`.
Ephemeral events never wait for room: when the queue is full they are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections import deque
from uuid import UUID

import attrs

from chat4all.application.events import ReadEvents
from chat4all.application.ports import EventNotifier, WakeUp
from chat4all.domain.events import CursorExpired, EphemeralEvent, UserEvent

log = logging.getLogger(__name__)

PAGE = 100
RETRY_AFTER_FAILURE = 2.0  # seconds before the pump reads again after the log could not be read


@attrs.frozen
class FeedLimits:
    queue_size: int = 500  # frames waiting to be sent, per connection
    slow_client: float = 10.0  # seconds a full queue may wait for the client before it is dropped
    recheck: float = 3600.0  # seconds between reads of the log when nothing woke the feed (a last net)


class ResyncReason(str, enum.Enum):
    CURSOR_EXPIRED = "cursor_expired"  # reload over REST, then resume from `resume_from`
    TOO_SLOW = "too_slow"  # reconnect and resume from the last seq received: nothing was lost


@attrs.frozen
class Resync:
    reason: ResyncReason
    resume_from: int
    detail: str


@attrs.frozen
class Ended:
    """The connection must close (its token expired or was revoked): `code` says why."""

    code: str
    detail: str


Frame = UserEvent | EphemeralEvent | Resync | Ended


class LiveFeed:
    def __init__(self, user_id: UUID, events: ReadEvents, notifier: EventNotifier, limits: FeedLimits) -> None:
        self.user_id = user_id
        self._events = events
        self._notifier = notifier
        self._limits = limits
        self._frames: deque[Frame] = deque()
        self._ready = asyncio.Event()  # frames are waiting, or the feed ended
        self._room = asyncio.Event()  # the queue has room
        self._ended: Ended | None = None
        self._pump: asyncio.Task[None] | None = None
        self._wakeup: WakeUp | None = None  # the pump's, once it listens: a nudge sets it
        self.last_sent: int | None = None  # the seq of the last stored event taken by the transport
        self.cursor: int | None = None  # where the pump has read the log to (None: not started)

    def resume(self, since: int | None) -> None:
        """(Re)starts the feed after `since` (None: from the newest event, replaying nothing);
        frames still queued from an earlier cursor are dropped."""
        self._stop_pump()
        self._frames.clear()
        self.last_sent = self.cursor = since
        self._pump = asyncio.create_task(self._run(since), name=f"live-feed-{self.user_id}")

    async def next(self, timeout: float | None = None) -> Frame | None:
        """The next frame to send; None when `timeout` seconds pass without one."""
        if self._ended is not None:
            return self._ended
        if not self._frames:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):  # (wait_for would start a task per frame on Python 3.11)
                    await self._ready.wait()
            except TimeoutError:
                return None
            if self._ended is not None:
                return self._ended
        frame = self._frames.popleft()
        self._room.set()
        if isinstance(frame, UserEvent):
            self.last_sent = frame.seq
        return frame

    def nudge(self) -> None:
        """The log has events past this feed's cursor: read it now (a wake-up was lost)."""
        if self._wakeup is not None:
            self._wakeup.set()

    def offer(self, event: EphemeralEvent) -> None:
        """An ephemeral event: queued if there is room, else dropped (it is never owed to anyone)."""
        if len(self._frames) < self._limits.queue_size and self._ended is None:
            self._frames.append(event)
            self._ready.set()

    def end(self, ended: Ended) -> None:
        """Ends the feed: `next` returns `ended` from now on, ahead of anything queued."""
        if self._ended is None:
            self._ended = ended
            self._stop_pump()
            self._ready.set()

    async def close(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _stop_pump(self) -> None:
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
        self._pump = None

    async def _run(self, since: int | None) -> None:
        async with self._notifier.listen(self.user_id) as wakeup:
            self._wakeup = wakeup
            cursor = since
            while True:
                try:
                    batch = await self._events.page(self.user_id, cursor, PAGE)
                except CursorExpired as expired:
                    self._resync(ResyncReason.CURSOR_EXPIRED, expired.resume_from, expired.detail)
                    return
                except Exception:  # the log is unreachable for now; nothing is lost, read it again later
                    log.warning("could not read the events of user %s; retrying", self.user_id, exc_info=True)
                    await asyncio.sleep(RETRY_AFTER_FAILURE)
                    continue
                for event in batch.events:
                    if not await self._put(event):
                        return
                cursor = self.cursor = batch.next
                if len(batch.events) < PAGE:
                    await self._idle(wakeup)

    async def _idle(self, wakeup: WakeUp) -> None:
        """Until a wake-up, a nudge (which sets the same wake-up), or the recheck period
        (jittered, so that connections opened together do not all re-read together)."""
        await wakeup.wait(self._limits.recheck * random.uniform(0.8, 1.0))

    async def _put(self, event: UserEvent) -> bool:
        while len(self._frames) >= self._limits.queue_size:
            self._room.clear()
            try:
                async with asyncio.timeout(self._limits.slow_client):
                    await self._room.wait()
            except TimeoutError:
                self._resync(
                    ResyncReason.TOO_SLOW,
                    self.last_sent or 0,
                    f"the connection did not keep up with its events for {self._limits.slow_client:g} s; "
                    "reconnect and resume from the last seq received",
                )
                return False
        self._frames.append(event)
        self._ready.set()
        return True

    def _resync(self, reason: ResyncReason, resume_from: int, detail: str) -> None:
        """Drops what is queued (the client fetches it again) and leaves the resync as the last frame."""
        self._frames.clear()
        self._frames.append(Resync(reason, resume_from, detail))
        self._ready.set()
