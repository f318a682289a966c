"""Faust's Kafka transport with a short broker-side fetch wait only where it buys latency.

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500`, and that wait shows up as
latency: aiokafka leaves the partitions whose records are still being handled out of its next
fetch, and records arriving on those partitions can then sit in the broker until that fetch's
wait runs out. Measured with `benchmarks.messages --mode open --rate 200` (same commit, only the
wait changed): accept->delivered p50/p95 312/1,082 ms with 1500 ms, 236/571 ms with 10 ms; on a
worker that was just keeping up, each hop's median went from 1.6 s to 0.06 s.

A fetch that asks for every partition its broker leads is different: the broker answers it as
soon as a record arrives on any of them, so a long wait delays nothing. Giving such fetches the
short wait too made an idle worker fetch about 100 times a second; worker and broker together
spent about 0.2 cores of the 2-core benchmark machine on doing nothing, and a lightly loaded
deployment paid it on top of every message. So only a fetch that leaves a partition out gets the
short wait (`short_wait_only_for_partial_fetches`).
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

import aiokafka
import faust
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.subscription_state import Assignment
from aiokafka.protocol.fetch import FetchRequest
from faust.tables import TableManager
from faust.transport.drivers import aiokafka as faust_aiokafka

DEFAULT_FETCH_MAX_WAIT_MS = 10
# The wait of a fetch that covers all of its broker's assigned partitions. Anything sent on the
# fetch's connection meanwhile (a metadata refresh, offset look-ups after a rebalance) queues
# behind it, so it stays well under Faust's 1.5 s.
COMPLETE_FETCH_MAX_WAIT_MS = 500


class AiokafkaInternalsChanged(RuntimeError):
    """The installed aiokafka lacks a private part of it that this module relies on."""


def require_aiokafka_internals(
    fetcher: type = Fetcher,
    assignment: type = Assignment,
    request: type = FetchRequest,
    consumer: type = aiokafka.AIOKafkaConsumer,
) -> None:
    """Raises `AiokafkaInternalsChanged`, naming what is missing, unless aiokafka still has the
    undocumented parts `short_wait_only_for_partial_fetches` and `_ConsumerThread` use. Run when
    a `LowLatencyApp` is built: otherwise an aiokafka that renamed one would fail only inside
    the consumer's fetch loop, or (for the attributes set here) quietly ignore the waits."""
    missing = [
        f"{owner.__name__}.{name}"
        for owner, name in [
            (fetcher, "_get_actions_per_node"),
            (fetcher, "_select_read_replica"),
            (assignment, "tps"),
            (request, "topics"),
        ]
        if not hasattr(owner, name)
    ]
    # Instance attributes set here: looked for in the code of the aiokafka method that reads them.
    for owner, reader, name in [(request, "build", "_max_wait_ms"), (consumer, "start", "_fetch_max_wait_ms")]:
        if name not in _names_used_by(getattr(owner, reader, None)):
            missing.append(f"{owner.__name__}.{name} (as read by {owner.__name__}.{reader})")
    if missing:
        raise AiokafkaInternalsChanged(
            f"aiokafka {aiokafka.__version__} has no {', '.join(missing)}, which "
            f"{__name__} relies on to choose each fetch's wait; adapt that module to this "
            "aiokafka, or install the version pinned in pyproject.toml"
        )


def _names_used_by(function: Any) -> tuple[str, ...]:
    code = getattr(inspect.unwrap(function), "__code__", None) if function is not None else None
    return () if code is None else code.co_names


def short_wait_only_for_partial_fetches(fetcher: Any, complete_wait_ms: int = COMPLETE_FETCH_MAX_WAIT_MS) -> None:
    """Makes an aiokafka `Fetcher` send each fetch that includes every assigned partition of its
    node with `complete_wait_ms`; fetches that leave some out (records not yet handed over,
    paused, being reset, ...) keep the consumer's own `fetch_max_wait_ms`."""
    plan = fetcher._get_actions_per_node

    def actions_per_node(assignment: Any) -> Any:
        actions = plan(assignment)
        requests = actions[0]
        if requests:
            assigned = Counter(fetcher._select_read_replica(tp) for tp in assignment.tps)
            for node_id, request in requests:
                if sum(len(partitions) for _, partitions in request.topics) == assigned[node_id]:
                    request._max_wait_ms = complete_wait_ms
        return actions

    fetcher._get_actions_per_node = actions_per_node


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts, which is after it is created here.
        consumer._fetch_max_wait_ms = transport.app.fetch_max_wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # The fetcher exists once the consumer started; it fetches only after the group assigned
        # partitions, which comes later.
        short_wait_only_for_partial_fetches(self._consumer._fetcher)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class _TableManagerWithoutStartDelay(TableManager):
    """Faust's table manager sleeps 1 s when it starts, giving tables declared late a chance to
    be registered before the consumer subscribes. An app without tables has nothing to wait for,
    and that second delays every worker's first fetch, a restarted worker's recovery included."""

    async def on_start(self) -> None:
        if len(self):
            await super().on_start()
        elif not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class LowLatencyApp(faust.App):
    """A `faust.App` whose Kafka consumer waits at most `fetch_max_wait_ms` in each fetch that
    leaves partitions out (see the module's docstring), and that subscribes as soon as it starts
    when it has no tables."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = DEFAULT_FETCH_MAX_WAIT_MS, **kwargs: Any) -> None:
        require_aiokafka_internals()
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, TableManager=_TableManagerWithoutStartDelay, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
