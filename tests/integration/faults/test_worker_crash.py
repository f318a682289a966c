"""`kill -9` of a worker in the middle of a burst, with the production defaults of the consumer
group (no test-only timeouts).

Every message the API accepted ends `delivered`, with exactly one history entry per transition
(one `delivered` per channel) and exactly one connector line per recipient and channel, counted
over the logs of every worker incarnation, the killed ones included, but for what the README
allows: a line written by a killed worker whose ledger commit was in flight, and written again
by the next owner of the partition (`split_resent_at_a_kill`). And deliveries resume
quickly: within 10 s of the restart when the only worker is killed and restarted (it rejoins as
the static member it was), within 10 s of the kill when a second worker is alive (it takes the
dead one's partitions once its session times out).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
from tests.integration.faults.checking import connector_lines, final_check, settle
from tests.integration.faults.load import Load, plan
from tests.integration.faults.recovery import (
    RESUME_WITHIN,
    conversations_on,
    last_assigned,
    resumed_after,
    split_resent_at_a_kill,
)
from tests.integration.faults.report import assert_nothing_lost_nothing_doubled, print_figures
from tests.integration.faults.servers import say
from tests.integration.faults.stack import Stack

pytestmark = pytest.mark.services

MESSAGES = 5000
CLIENTS = 50
KILL_AFTER = (0.3, 0.6)  # shares of the burst answered when the worker is killed
SETTLE_TIMEOUT = 480.0  # the backlog may take long on a busy machine: failing needs a stall
STALL = 60.0  # seconds without one more message finishing
PARTITIONS = 6  # CHAT4ALL_KAFKA_PARTITIONS default


async def test_worker_killed_twice_mid_stream_delivers_everything_once(tmp_path):
    async with Stack(tmp_path, "kill") as stack:
        conversations = await stack.deploy()
        everything = [conversation_id for conversation_id, *_ in conversations]
        api = stack.processes["api"]
        planned = plan(conversations, MESSAGES)
        load = Load(stack, planned, CLIENTS, lambda _: api.url)
        burst = asyncio.create_task(load.run())
        resumed, killed_at = [], {}
        for share in KILL_AFTER:
            await load.until(int(MESSAGES * share))
            stack.kill("worker")
            killed_at[stack.retired[-1].out] = time.time()
            lines = sum(connector_lines(stack.worker_logs()).values())
            say(f"kill -9 of the worker after {load.answered} answers, {lines} connector lines so far")
            restarted = time.time()
            stack.start_worker()
            resumed.append(await resumed_after(stack, restarted, everything))
            say(f"deliveries resumed {resumed[-1]:.1f}s after the restart")
        await burst
        figures = load.figures()
        settled = await settle(stack, figures["accepted"], timeout=SETTLE_TIMEOUT, stall=STALL, what="worker kill")
        report = await final_check(stack, planned, load.ids("accepted"))
        resent, report.duplicate_lines = split_resent_at_a_kill(stack, report.duplicate_lines, killed_at)

        summary = print_figures(
            "worker kill -9 x2",
            load,
            report,
            burst=f"{load.finished - load.started:.1f}s ({load.rate():.0f}/s)",
            resumed_after_restart=[f"{seconds:.1f}s" for seconds in resumed],
            resent_at_a_kill=len(resent),
            settled_after_burst=f"{settled:.1f}s",
            redriven=stack.count_in_logs("re-driving message"),
        )
        assert figures["accepted"] == MESSAGES, f"{summary}\n{load.unanswered()}"
        assert report.unfinished == 0, f"unfinished: {summary}"
        assert report.delivered == report.messages == MESSAGES and report.failed == 0, summary
        assert_nothing_lost_nothing_doubled(summary, report, stack)
        assert max(resumed) <= RESUME_WITHIN, f"deliveries resumed too late after a restart: {summary}"


async def test_a_second_worker_takes_over_a_killed_workers_partitions(tmp_path):
    async with Stack(tmp_path, "takeover") as stack:
        conversations = await stack.deploy(workers=("worker", "worker2"), users=10)
        api = stack.processes["api"]
        planned = plan(conversations, MESSAGES // 2)
        load = Load(stack, planned, CLIENTS, lambda _: api.url)
        burst = asyncio.create_task(load.run())
        await load.until(int(len(planned) * 0.4))
        held = last_assigned(stack.processes["worker"], stack.topic(MESSAGE_PROCESSING))
        killed = time.time()
        stack.kill("worker")
        killed_at = {stack.retired[-1].out: time.time()}
        orphaned = conversations_on(conversations, held, PARTITIONS)
        say(f"kill -9 of one of two workers after {load.answered} answers; it held partitions {sorted(held)}")
        resumed = await resumed_after(stack, killed, orphaned)
        say(f"its conversations' deliveries resumed {resumed:.1f}s after the kill")
        await burst
        figures = load.figures()
        settled = await settle(stack, figures["accepted"], timeout=SETTLE_TIMEOUT, stall=STALL, what="takeover")
        report = await final_check(stack, planned, load.ids("accepted"))
        resent, report.duplicate_lines = split_resent_at_a_kill(stack, report.duplicate_lines, killed_at)

        summary = print_figures(
            "1 of 2 workers kill -9",
            load,
            report,
            burst=f"{load.finished - load.started:.1f}s ({load.rate():.0f}/s)",
            killed_workers_partitions=sorted(held),
            resent_at_a_kill=len(resent),
            resumed_after_kill=f"{resumed:.1f}s",
            settled_after_burst=f"{settled:.1f}s",
        )
        assert figures["accepted"] == len(planned), f"{summary}\n{load.unanswered()}"
        assert report.unfinished == 0, f"unfinished: {summary}"
        assert report.delivered == report.messages == len(planned) and report.failed == 0, summary
        assert_nothing_lost_nothing_doubled(summary, report, stack)
        assert resumed <= RESUME_WITHIN, f"the surviving worker took over too late: {summary}"
