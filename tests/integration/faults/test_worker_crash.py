"""`kill -9` of the worker, twice, in the middle of a 5,000-message burst.

Every message the API accepted ends `delivered`, with exactly one history entry per transition
(one `delivered` per channel) and exactly one connector line per recipient and channel, counted
over the logs of every worker incarnation, the killed ones included.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.faults.harness import (
    Load,
    Stack,
    assert_nothing_lost_nothing_doubled,
    connector_lines,
    final_check,
    plan,
    print_figures,
    say,
    settle,
)

pytestmark = pytest.mark.services

MESSAGES = 5000
CLIENTS = 50
KILL_AFTER = (0.3, 0.6)  # shares of the burst answered when the worker is killed
SETTLE_TIMEOUT = 480.0  # the backlog may take long on a busy machine: failing needs a stall
STALL = 60.0  # seconds without one more message finishing


async def test_worker_killed_twice_mid_stream_delivers_everything_once(tmp_path):
    async with Stack(tmp_path, "kill") as stack:
        conversations = await stack.deploy()
        api = stack.processes["api"]
        planned = plan(conversations, MESSAGES)
        load = Load(stack, planned, CLIENTS, lambda _: api.url)
        burst = asyncio.create_task(load.run())
        rejoined = []
        for share in KILL_AFTER:
            await load.until(int(MESSAGES * share))
            stack.kill("worker")
            lines = sum(connector_lines(stack.worker_logs()).values())
            say(f"kill -9 of the worker after {load.answered} answers, {lines} connector lines so far")
            stack.start_worker()
            rejoined.append(f"{await stack.wait_worker():.1f}s")
        await burst
        figures = load.figures()
        settled = await settle(stack, figures["accepted"], timeout=SETTLE_TIMEOUT, stall=STALL, what="worker kill")
        report = await final_check(stack, planned, load.ids("accepted"))

        summary = print_figures(
            "worker kill -9 x2",
            load,
            report,
            burst=f"{load.finished - load.started:.1f}s ({load.rate():.0f}/s)",
            restarted_worker_owned_partitions_after=rejoined,
            settled_after_burst=f"{settled:.1f}s",
            redriven=stack.count_in_logs("re-driving message"),
        )
        assert figures["accepted"] == MESSAGES, f"{summary}\n{load.unanswered()}"
        assert report.unfinished == 0, f"unfinished: {summary}"
        assert report.delivered == report.messages == MESSAGES and report.failed == 0, summary
        assert_nothing_lost_nothing_doubled(summary, report, stack)
