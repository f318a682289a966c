"""`chat4all worker`: the distributed profile's router and channel connectors, as a Faust app.

One agent consumes `message_processing` and runs the route use case, which delivers each message
on this worker's connectors in the same batch (CHAT4ALL_DELIVER_WHILE_ROUTING, the default) or
publishes one event per pending channel to `<channel>_outgoing`; one agent per channel topic runs
the deliver use case on those events.
Within an agent, events are spread over a fixed set of lanes by their key (the conversation id):
a lane handles one batch at a time - every event queued on it when it becomes free, in arrival
order, as one run of the use case - and lanes run concurrently (`KeyLanes`). So a conversation's
events keep their order, a slow or busy conversation does not hold up the others in its
partition, and the busier the worker, the larger its batches and the cheaper each event. An event is acknowledged only once handled, and Faust commits a
partition's offsets only up to its first unacknowledged event (at-least-once); both use cases are
idempotent, so an event seen twice after a crash or rebalance does no harm. More partitions and
more worker processes scale out further.

Also usable as `faust -A chat4all.entrypoints.worker worker` (settings from the environment).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import faust
import mode
from aiokafka.errors import KafkaError

from chat4all.adapters.kafka.faust_transport import LowLatencyApp
from chat4all.adapters.kafka.membership import InstanceIdTaken, StaticMembership
from chat4all.application.topics import MESSAGE_PROCESSING
from chat4all.domain.errors import DomainError, Unavailable
from chat4all.entrypoints.bootstrap import Hub
from chat4all.entrypoints.distributed import all_topics, build_distributed_worker, event_topics
from chat4all.entrypoints.settings import Settings, SettingsError

log = logging.getLogger("chat4all.worker")

RETRY_FIRST_DELAY = 0.1
RETRY_MAX_DELAY = 5.0
# Events a lane queues; a full lane makes the agent wait, which leaves the backlog in Kafka.
LANE_DEPTH = 256
# Lanes per agent. With deliver-while-routing (the default) the routing agent's lanes carry nearly
# all the work, so up to 2 batches are in flight; without it, up to 6 across the three agents.
# Fewer lanes make larger batches under load (each batch costs a few statements, whatever its size).
LANES_PER_AGENT = 2
# Events a lane hands to the use case at once.
MAX_BATCH = 128
# How long a lane that has fewer than MAX_BATCH events waits for more before handling them. Faust
# hands events over one at a time, a few event-loop turns each, and a lane waiting (instead of
# running small batches back to back) leaves it those turns: batches grow, cost per event falls.
BATCH_LINGER = 0.02

Handler = Callable[[str, Mapping[str, Any]], Awaitable[None]]
BatchHandler = Callable[[str, Sequence[Mapping[str, Any]]], Awaitable[None]]


class HubService(mode.Service):
    """Starts the hub's adapters (database pool, object storage, Kafka publisher) before the
    Faust app starts consuming, and stops them after it stopped. Also makes sure the topics
    exist with the configured partition count, so a worker started before `migrate` does not
    have them auto-created by the broker with another count."""

    def __init__(
        self, hub: Hub, topics: list[str], partitions: int, replication: int, *, consumed: list[str], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.hub = hub
        self.topics = topics
        self.consumed = consumed
        self.partitions = partitions
        self.replication = replication

    async def on_start(self) -> None:
        from chat4all.adapters.kafka import ensure_topics

        bootstrap = self.hub.settings.kafka_bootstrap
        assert bootstrap is not None
        delay = 0.5
        while True:  # a broker that is still starting (or restarting) is waited for, not a crash
            try:
                await ensure_topics(
                    bootstrap, self.topics, partitions=self.partitions, replication_factor=self.replication
                )
                break
            except (KafkaError, OSError, TimeoutError) as error:
                if self.should_stop:
                    return
                log.warning("Kafka at %s is not reachable (%s); retrying in %.1fs", bootstrap, error, delay)
                await self.sleep(delay)
                delay = min(delay * 2, 10.0)
        await self.hub.start()
        log.info("hub started; consuming %s", ", ".join(self.consumed))

    async def on_stop(self) -> None:
        await self.hub.stop()


def well_formed(topic: str, payload: Any) -> bool:
    if not isinstance(payload, Mapping):
        return False
    try:
        UUID(str(payload["message_id"]))
    except (KeyError, ValueError):
        return False
    return topic == MESSAGE_PROCESSING or isinstance(payload.get("channel"), str)


async def retry_until_handled(
    run: Callable[[], Awaitable[None]], what: str, stopping: Callable[[], bool]
) -> DomainError | None:
    """Runs a use case until it succeeds, or until it rejects its input (returned, not raised).

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
    """Runs one event's use case until it succeeds (`retry_until_handled`). A malformed event, or
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
    """`handle_with_retry` for a batch of events, handled as one run of the use case.

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
    `batch` events) and hands it to the use case as one batch, so batches grow with the load
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


def create_faust_app(
    settings: Settings,
    hub: Hub,
    *,
    group: str | None = None,
    partitions: int | None = None,
    auto_offset_reset: str = "earliest",
) -> faust.App:
    """A Faust app whose agents feed `hub.handle_events` (batches of one topic); starting the app starts the hub."""
    if not settings.kafka_bootstrap:
        raise SettingsError("CHAT4ALL_KAFKA_BOOTSTRAP is required for the worker")
    kafka, group = settings.kafka, group or settings.kafka.worker_group
    partitions, replication, prefix = partitions or kafka.partitions, kafka.replication, kafka.topic_prefix
    channels = tuple(hub.adapters.connectors)
    topics = event_topics(channels)
    datadir = settings.data_dir / "worker"  # Faust insists on one; with in-memory stores it stays empty
    try:
        membership = StaticMembership.claim(
            datadir / "instances", group, kafka.worker_instance_id, bootstrap=settings.kafka_bootstrap
        )
    except InstanceIdTaken as error:
        raise SettingsError(str(error)) from None
    app = LowLatencyApp(
        group,
        **membership.faust_settings(
            session_timeout=kafka.session_timeout.total_seconds(),
            heartbeat_interval=kafka.heartbeat_interval.total_seconds(),
            rebalance_timeout=kafka.rebalance_timeout.total_seconds(),
        ),
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        autodiscover=False,
        datadir=str(datadir),
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,  # HubService creates the topics; nothing is auto-declared
        topic_partitions=partitions,
        topic_replication_factor=replication,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset=auto_offset_reset,
        key_serializer="raw",
        value_serializer="json",
        # Commit handled offsets every second, from Faust's commit timer: fewer events are seen
        # twice after a crash. No commit every N acknowledgements: Faust runs those inside its
        # fetch loop, which stops handing events over until the broker answered.
        broker_commit_every=1_000_000,
        broker_commit_interval=1.0,
        # Events wait in the stream buffer only while an agent is busy; a bounded buffer keeps
        # a backlog in Kafka (visible as consumer lag) rather than in this process's memory.
        stream_buffer_maxsize=1024,
        producer_acks=-1,
        producer_linger_ms=2,
    )
    app.add_dependency(membership)
    app.add_dependency(
        HubService(
            hub,
            [prefix + name for name in all_topics(channels)],
            partitions,
            replication,
            consumed=[prefix + name for name in topics],
        )
    )

    def stopping() -> bool:
        return bool(app.should_stop)

    for name in topics:
        # The use cases know topics by name; only the Kafka side sees the deployment's prefix.
        topic = app.topic(prefix + name, partitions=partitions, key_serializer="raw", value_serializer="json")

        async def consume(stream: faust.StreamT, name: str = name) -> None:
            lanes = KeyLanes(name, hub.handle_events, stopping)
            try:
                async for event in stream.noack().events():
                    await lanes.put(event)
            finally:
                await lanes.close()

        # concurrency=1: Faust spreads a concurrent agent's events over its instances regardless of
        # key, which would reorder a conversation's events; KeyLanes parallelizes by key instead.
        app.agent(topic, name=f"chat4all.{name}", concurrency=1)(consume)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set, **kwargs: Any) -> None:
        log.info(
            "partitions assigned: %d (%s)",
            len(assigned),
            ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)) or "none",
        )

    return app


class _Worker(faust.Worker):
    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        log.info("worker started (consumer group %s)", self.app.conf.id)


def run_worker(settings: Settings) -> None:
    """Runs until SIGINT/SIGTERM, then stops consuming, commits and closes the hub's adapters."""
    if not settings.distributed:
        raise SettingsError("`chat4all worker` runs the distributed profile: set CHAT4ALL_PROFILE=distributed")
    loop = _new_event_loop()
    hub = build_distributed_worker(settings)
    app = create_faust_app(settings, hub)
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr="127.0.0.1", registry=hub.adapters.metrics.registry)
    worker = _Worker(
        app,
        loop=loop,
        loglevel=settings.log_level,
        override_logging=False,  # keep chat4all's logging: connector lines on stdout, the rest on stderr
        redirect_stdouts=False,
        quiet=True,
    )
    worker.spinner = None  # it would draw on stdout, where the connector lines go
    worker.execute_from_commandline()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows only
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def __getattr__(name: str) -> Any:
    """`faust -A chat4all.entrypoints.worker` looks up `app`; it is built on first use from the environment."""
    if name != "app":
        raise AttributeError(name)
    from chat4all.entrypoints.logs import configure_logging
    from chat4all.entrypoints.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    app = create_faust_app(settings, build_distributed_worker(settings))
    globals()["app"] = app
    return app
