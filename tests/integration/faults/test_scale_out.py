"""Two API processes (two outbox relays claiming rows with SKIP LOCKED) and two workers sharing
the consumer group, all at once: exactly one connector line per recipient and channel, exactly
one history entry per transition. Each client sends into a conversation of its own, one message
after the other, so each conversation's acceptance order is known and checked too: routing and
each channel's outcome are recorded in that order.

The second worker runs with CHAT4ALL_DELIVER_WHILE_ROUTING=false, as a deployment that keeps
connectors on workers of their own would: the messages it routes go through the channel topics,
where either worker may deliver them; the first worker delivers what it routes itself."""

from __future__ import annotations

import pytest

from chat4all.application.work import delivery_stream as channel_topic
from tests.integration.faults.broker import end_offsets
from tests.integration.faults.checking import connector_lines, final_check, settle
from tests.integration.faults.load import Load, plan
from tests.integration.faults.report import assert_nothing_lost_nothing_doubled, print_figures
from tests.integration.faults.stack import Stack

pytestmark = pytest.mark.services

MESSAGES = 600
CLIENTS = 50
USERS = 11  # 55 private conversations: one for each client
SETTLE_TIMEOUT = 240.0
STALL = 60.0


async def test_two_relays_and_two_workers_double_nothing(tmp_path):
    async with Stack(tmp_path, "twice") as stack:
        conversations = await stack.deploy(apis=("api", "api2"), workers=("worker",), users=USERS)
        stack.start_worker("worker2", CHAT4ALL_DELIVER_WHILE_ROUTING="false")
        await stack.wait_worker("worker2")
        urls = [stack.processes["api"].url, stack.processes["api2"].url]
        planned = plan(conversations, MESSAGES, per_client=CLIENTS)
        load = Load(stack, planned, CLIENTS, lambda client: urls[client % 2], sticky=True)
        await load.run()
        figures = load.figures()
        settled = await settle(stack, figures["accepted"], timeout=SETTLE_TIMEOUT, stall=STALL, what="two of each")
        report = await final_check(stack, planned, load.ids("accepted"), ordered=True)
        per_worker = {
            name: sum(connector_lines([stack.processes[name].out]).values()) for name in ("worker", "worker2")
        }
        per_api = {url: sum(1 for a in load.answers.values() if a.api == url and a.outcome == "accepted") for url in urls}

        summary = print_figures(
            "2 APIs + 2 workers",
            load,
            report,
            burst=f"{load.finished - load.started:.1f}s ({load.rate():.0f}/s)",
            accepted_per_api=list(per_api.values()),
            lines_per_worker=list(per_worker.values()),
            settled_after_burst=f"{settled:.1f}s",
            redriven=stack.count_in_logs("re-driving message"),
        )
        through_channel_topics = 0
        for channel in ("whatsapp", "instagram"):
            through_channel_topics += sum((await end_offsets(stack.topic(channel_topic(channel)))).values())
        assert through_channel_topics, f"the second worker routed nothing through the channel topics: {summary}"
        assert figures["accepted"] == MESSAGES, f"{summary}\n{load.unanswered()}"
        assert all(per_api.values()), f"one API accepted nothing: {summary}"
        assert all(per_worker.values()), f"one worker delivered nothing: {summary}"
        assert report.unfinished == 0, f"unfinished: {summary}"
        assert report.delivered == report.messages == MESSAGES and report.failed == 0, summary
        assert_nothing_lost_nothing_doubled(summary, report, stack)
