"""`chat4all worker`: the distributed profile's routing and delivery, fed by Kafka.

The composition root builds the `worker` process (`bootstrap.build`); its dispatcher says which
streams it consumes (routing, and one delivery stream per channel) and runs the use case of each
event. The Kafka side - topics, consumer group, lanes by conversation, batches, acks and retries -
is `adapters.kafka.consumer` and `adapters.kafka.lanes`. Whether routing delivers on this worker's
own connectors in the same batch (CHAT4ALL_DELIVER_WHILE_ROUTING, the default) or publishes one
event per pending channel is the routing policy the root picks. More partitions and more worker
processes scale out.

Also usable as `faust -A chat4all.entrypoints.worker worker` (settings from the environment).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from chat4all.adapters.kafka.consumer import ConsumerOptions, consumer_app
from chat4all.adapters.kafka.membership import InstanceIdTaken
from chat4all.application.work import every_stream
from chat4all.entrypoints.bootstrap import WORKER, build
from chat4all.entrypoints.hub import Hub
from chat4all.entrypoints.settings import Settings, SettingsError

log = logging.getLogger("chat4all.worker")


def consumer_options(settings: Settings) -> ConsumerOptions:
    if not settings.kafka_bootstrap:
        raise SettingsError("CHAT4ALL_KAFKA_BOOTSTRAP is required for the worker")
    kafka = settings.kafka
    return ConsumerOptions(
        bootstrap=settings.kafka_bootstrap,
        group=kafka.worker_group,
        instance_id=kafka.worker_instance_id,
        partitions=kafka.partitions,
        replication=kafka.replication,
        topic_prefix=kafka.topic_prefix,
        session_timeout=kafka.session_timeout.total_seconds(),
        heartbeat_interval=kafka.heartbeat_interval.total_seconds(),
        rebalance_timeout=kafka.rebalance_timeout.total_seconds(),
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        datadir=settings.data_dir / "worker",
    )


def create_faust_app(settings: Settings, hub: Hub) -> faust.App:
    """A Faust app whose agents feed the hub's dispatcher; starting the app starts the hub."""
    options = consumer_options(settings)
    try:
        return consumer_app(
            options, hub.dispatcher, every_stream(hub.dispatcher.channels), start=hub.start, stop=hub.stop
        )
    except InstanceIdTaken as error:
        raise SettingsError(str(error)) from None


class _Worker(faust.Worker):
    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        log.info("worker started (consumer group %s)", self.app.conf.id)


def run_worker(settings: Settings) -> None:
    """Runs until SIGINT/SIGTERM, then stops consuming, commits and closes the hub's adapters."""
    if not settings.distributed:
        raise SettingsError("`chat4all worker` runs the distributed profile: set CHAT4ALL_PROFILE=distributed")
    loop = _new_event_loop()
    hub = build(WORKER, settings)
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
    app = create_faust_app(settings, build(WORKER, settings))
    globals()["app"] = app
    return app
