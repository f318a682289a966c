"""The distributed profile's consumer: a Faust app with one agent per consumed topic.

Each agent feeds its topic's events, through `KeyLanes`, to the dispatcher's `handle` as batches
of one stream; the topics are the dispatcher's streams behind the deployment's prefix (only the
Kafka side sees it). Starting the app starts the process's adapters (`Lifecycle`) once the topics
exist; stopping it stops them after the consumer has stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import faust
import mode
from aiokafka.errors import KafkaError

from chat4all.adapters.kafka.admin import ensure_topics
from chat4all.adapters.kafka.faust_transport import LowLatencyApp
from chat4all.adapters.kafka.lanes import KeyLanes
from chat4all.adapters.kafka.membership import StaticMembership

log = logging.getLogger("chat4all.worker")


class Consumes(Protocol):
    """What the consumer feeds: the dispatcher (`application.dispatch.Dispatcher`)."""

    def streams(self) -> list[str]: ...

    async def handle(self, stream: str, payloads: Sequence[Mapping[str, Any]]) -> None: ...


@attrs.frozen
class ConsumerOptions:
    bootstrap: str
    group: str
    instance_id: str | None  # None: "<host name>-<slot>" (see `membership`)
    partitions: int
    replication: int
    topic_prefix: str
    session_timeout: float  # seconds, as the three below
    heartbeat_interval: float
    rebalance_timeout: float
    fetch_max_wait_ms: int
    datadir: Path  # Faust insists on one; with in-memory stores it stays empty


class Lifecycle(mode.Service):
    """Starts the process's adapters (database pool, object storage, Kafka publisher) before the
    Faust app starts consuming, and stops them after it stopped. Also makes sure the topics
    exist with the configured partition count, so a worker started before `migrate` does not
    have them auto-created by the broker with another count."""

    def __init__(
        self,
        options: ConsumerOptions,
        topics: list[str],
        start: Callable[[], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.options = options
        self.topics = topics
        self._start = start
        self._stop = stop

    async def on_start(self) -> None:
        options, delay = self.options, 0.5
        while True:  # a broker that is still starting (or restarting) is waited for, not a crash
            try:
                await ensure_topics(
                    options.bootstrap,
                    self.topics,
                    partitions=options.partitions,
                    replication_factor=options.replication,
                )
                break
            except (KafkaError, OSError, TimeoutError) as error:
                if self.should_stop:
                    return
                log.warning("Kafka at %s is not reachable (%s); retrying in %.1fs", options.bootstrap, error, delay)
                await self.sleep(delay)
                delay = min(delay * 2, 10.0)
        await self._start()

    async def on_stop(self) -> None:
        await self._stop()


def consumer_app(
    options: ConsumerOptions,
    dispatcher: Consumes,
    every_stream: list[str],
    *,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
) -> faust.App:
    """The Faust app; `every_stream`: what the process may publish to, whose topics it creates.
    Raises `InstanceIdTaken` if another worker on this host holds the instance id."""
    membership = StaticMembership.claim(
        options.datadir / "instances", options.group, options.instance_id, bootstrap=options.bootstrap
    )
    app = LowLatencyApp(options.group, **_faust_settings(options, membership))
    app.add_dependency(membership)
    prefix = options.topic_prefix
    consumed = dispatcher.streams()

    async def started() -> None:
        await start()
        log.info("hub started; consuming %s", ", ".join(prefix + stream for stream in consumed))

    app.add_dependency(Lifecycle(options, [prefix + stream for stream in every_stream], started, stop))
    for stream in consumed:
        _add_agent(app, options, stream, dispatcher)
    app.on_partitions_assigned.connect(_log_assignment)
    return app


def _faust_settings(options: ConsumerOptions, membership: StaticMembership) -> dict[str, Any]:
    return {
        **membership.faust_settings(
            session_timeout=options.session_timeout,
            heartbeat_interval=options.heartbeat_interval,
            rebalance_timeout=options.rebalance_timeout,
        ),
        "fetch_max_wait_ms": options.fetch_max_wait_ms,
        "broker": f"kafka://{options.bootstrap}",
        "store": "memory://",
        "autodiscover": False,
        "datadir": str(options.datadir),
        "web_enabled": False,
        "topic_disable_leader": True,
        "topic_allow_declare": False,  # Lifecycle creates the topics; nothing is auto-declared
        "topic_partitions": options.partitions,
        "topic_replication_factor": options.replication,
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        "key_serializer": "raw",
        "value_serializer": "json",
        # Commit handled offsets every second, from Faust's commit timer: fewer events are seen
        # twice after a crash. No commit every N acknowledgements: Faust runs those inside its
        # fetch loop, which stops handing events over until the broker answered.
        "broker_commit_every": 1_000_000,
        "broker_commit_interval": 1.0,
        # Events wait in the stream buffer only while an agent is busy; a bounded buffer keeps
        # a backlog in Kafka (visible as consumer lag) rather than in this process's memory.
        "stream_buffer_maxsize": 1024,
        "producer_acks": -1,
        "producer_linger_ms": 2,
    }


def _add_agent(app: faust.App, options: ConsumerOptions, stream: str, dispatcher: Consumes) -> None:
    topic = app.topic(
        options.topic_prefix + stream, partitions=options.partitions, key_serializer="raw", value_serializer="json"
    )

    def stopping() -> bool:
        return bool(app.should_stop)

    async def consume(events: faust.StreamT) -> None:
        lanes = KeyLanes(stream, dispatcher.handle, stopping)
        try:
            async for event in events.noack().events():
                await lanes.put(event)
        finally:
            await lanes.close()

    # concurrency=1: Faust spreads a concurrent agent's events over its instances regardless of
    # key, which would reorder a conversation's events; KeyLanes parallelizes by key instead.
    app.agent(topic, name=f"chat4all.{stream}", concurrency=1)(consume)


async def _log_assignment(sender: Any, assigned: set, **kwargs: Any) -> None:
    log.info(
        "partitions assigned: %d (%s)",
        len(assigned),
        ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)) or "none",
    )
