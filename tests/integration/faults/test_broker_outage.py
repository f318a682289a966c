"""Kafka stopped while clients keep sending.

The API keeps answering 200 (it only writes PostgreSQL: message, history entry and outbox row in
one transaction) and reports the broker unavailable on /ready; once Kafka is started again, the
outbox drains and every message is delivered exactly once. A publisher busy throughout the outage
sends again soon after the broker is back (an idempotent producer with batches in flight when the
broker stopped used to fail with OutOfOrderSequenceNumber for good).

The broker comes back on its own port while the API and the worker keep reconnecting to it, as an
operator's `scripts/services.sh down kafka` / `up kafka` would do, and nothing is restarted by
hand: the clients find it again and the backlog drains by itself. The port lies below the kernel's
ephemeral range, as every default port of `scripts/services.sh` does: inside that range one of the
retrying clients could be handed the broker's port as its own source port, connect to itself and
keep the broker from listening there again ("Address already in use").

The processes run with the consumer-group timeouts a deployment gets (none of the harness's
shortened ones).

The deployment runs on a broker of its own (`scripts/services.sh up kafka` with a private state
directory and ports): stopping the shared broker would be an outage for every other run using it
at the same time. It is started again in `finally`, whatever happens, and stopped at the end.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.integration.faults.broker import PrivateBroker, PublishProbe
from tests.integration.faults.checking import final_check, settle
from tests.integration.faults.load import Load, plan
from tests.integration.faults.report import assert_nothing_lost_nothing_doubled, print_figures
from tests.integration.faults.servers import say
from tests.integration.faults.stack import Stack
from tests.ports import low_port_range

pytestmark = pytest.mark.services

MESSAGES = 600
CLIENTS = 50
STOP_AFTER = 150  # answers before the broker is stopped
OUTAGE_SECONDS = 10.0  # at least this long, and until OUTAGE_MESSAGES more were answered
OUTAGE_MESSAGES = 150
SETTLE_TIMEOUT = 240.0
PROBE_TIMEOUT = 30.0  # a publisher sends again within this long after the broker is back
STALL = 60.0
# Each client pauses after an answer, so the 600 messages take ~12 s (~50/s) and the outage, which
# starts a few seconds into the burst, falls in the middle of it: unpaced, the API accepts the
# whole burst before the broker is down.
THINK_TIME = 1.0
# The harness's shortened consumer-group timeouts (Faust reads them from the environment).
SHORTENED_TIMEOUTS = ("BROKER_SESSION_TIMEOUT", "BROKER_REBALANCE_TIMEOUT", "BROKER_HEARTBEAT_INTERVAL")


async def readiness(url: str) -> tuple[int, dict, str | None]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/ready", timeout=aiohttp.ClientTimeout(total=15)) as response:
            return response.status, await response.json(), response.headers.get("Retry-After")


async def test_api_accepts_during_a_broker_outage_and_the_backlog_drains(tmp_path):
    async with (
        PrivateBroker(tmp_path / "broker") as broker,
        Stack(tmp_path, "broker", CHAT4ALL_KAFKA_BOOTSTRAP=broker.bootstrap) as stack,
    ):
        assert broker.port < low_port_range().stop, broker.port
        for name in SHORTENED_TIMEOUTS:
            stack.env.pop(name, None)
        conversations = await stack.deploy()
        api = stack.processes["api"]
        planned = plan(conversations, MESSAGES)
        load = Load(stack, planned, CLIENTS, lambda _: api.url, think_time=THINK_TIME)
        burst = asyncio.create_task(load.run())
        await load.until(STOP_AFTER)
        async with PublishProbe(broker.bootstrap, stack.topic("faults_probe")) as probe:
            await asyncio.sleep(1.0)  # the probe's batches are in flight when the broker goes
            stopped = time.monotonic()
            try:
                took = await broker.stop()
                down_at = load.figures()
                say(f"Kafka stopped in {took:.1f}s, with {down_at['accepted']} messages accepted")
                ready_during = await readiness(api.url)
                await load.until(load.answered + OUTAGE_MESSAGES)
                await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
                during = {key: load.figures()[key] - down_at[key] for key in down_at}
            finally:
                took = await broker.start()  # fails if the port is held: nothing may have taken it
                back = time.monotonic()
                outage = back - stopped
                say(f"Kafka started again in {took:.1f}s; the outage lasted {outage:.1f}s")
            probe_recovery = await probe.recovered(back, PROBE_TIMEOUT)
            probe_errors = dict(probe.errors)
        await burst
        figures = load.figures()
        settled = await settle(stack, figures["accepted"], timeout=SETTLE_TIMEOUT, stall=STALL, what="broker outage")
        report = await final_check(stack, planned, load.ids("accepted"))
        ready_after = await readiness(api.url)

        summary = print_figures(
            "Kafka outage",
            load,
            report,
            broker_port=broker.port,
            outage=f"{outage:.1f}s",
            accepted_during_outage=during["accepted"],
            errors_during_outage=during["errors"] + during["no_answer"],
            ready_during_outage=f"{ready_during[0]} {ready_during[1].get('checks')}",
            settled_after_burst=f"{settled:.1f}s",
            producers_replaced=stack.count_in_logs("producer state lost", prefix=""),
            probe_publisher_errors=probe_errors,
            probe_publisher_sends_again_after=f"{probe_recovery:.1f}s" if probe_recovery is not None else "never",
            redriven=stack.count_in_logs("re-driving message"),
        )
        assert figures["errors"] == figures["no_answer"] == 0, f"{summary}\n{load.unanswered()}"
        assert probe_recovery is not None, f"a publisher never sent again after the broker came back: {summary}"
        assert during["accepted"] >= OUTAGE_MESSAGES, f"too few messages were sent during the outage: {summary}"
        assert ready_during[0] == 503 and ready_during[1]["checks"]["broker"] != "ok", summary
        assert ready_during[2], f"no Retry-After on the 503 from /ready: {summary}"
        assert ready_after[0] == 200, f"{summary}\n/ready after the outage: {ready_after}"
        assert report.unfinished == 0 and report.outbox_left == 0, f"unfinished: {summary}"
        assert report.delivered == report.messages == MESSAGES and report.failed == 0, summary
        assert_nothing_lost_nothing_doubled(summary, report, stack)
