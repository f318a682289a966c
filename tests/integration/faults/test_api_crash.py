"""`kill -9` of an API process in the middle of a burst.

Two API processes share the database (each with its outbox relay). Clients send to the first;
it is killed mid-burst, and each client whose request got no answer moves on to the second.
Every request that got a 200 is delivered. Every request that got no answer is sent again, with
the same message_id, to the first API restarted: it answers 200 (a replay when the killed process
had committed it) and the message is delivered exactly once.
"""

from __future__ import annotations

import asyncio

import aiohttp
import psycopg
import pytest

from tests.integration.faults.checking import final_check, settle
from tests.integration.faults.load import Load, plan, send
from tests.integration.faults.report import assert_nothing_lost_nothing_doubled, print_figures
from tests.integration.faults.servers import admin_dsn
from tests.integration.faults.stack import Stack

pytestmark = pytest.mark.services

MESSAGES = 600
CLIENTS = 50
KILL_AFTER = 250  # answers before the first API is killed
SETTLE_TIMEOUT = 240.0
STALL = 60.0


def stored(database: str, message_ids: list[str]) -> set[str]:
    with psycopg.connect(admin_dsn(database), connect_timeout=5) as connection:
        rows = connection.execute("SELECT id::text FROM messages WHERE id::text = ANY(%s)", (message_ids,)).fetchall()
    return {row[0] for row in rows}


async def test_requests_answered_or_retried_after_an_api_crash_are_delivered_once(tmp_path):
    async with Stack(tmp_path, "apikill") as stack:
        conversations = await stack.deploy(apis=("api", "api2"))
        first, second = stack.processes["api"], stack.processes["api2"]
        planned = plan(conversations, MESSAGES)
        by_id = {message.message_id: message for message in planned}
        targets = [first.url] * CLIENTS

        def fail_over(client: int) -> None:
            targets[client] = second.url

        load = Load(stack, planned, CLIENTS, lambda client: targets[client], on_no_answer=fail_over)
        burst = asyncio.create_task(load.run())
        await load.until(KILL_AFTER)
        stack.kill("api")
        await burst
        figures = load.figures()
        unanswered = load.ids("no_answer")
        committed_unanswered = await asyncio.to_thread(stored, stack.database, unanswered)

        restarted = stack.start_api("api", port=first.port)
        await stack.wait_api("api")
        retried = {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for message_id in unanswered:
                retried[message_id] = await send(session, restarted.url, stack, by_id[message_id])
        retry_failures = {key: f"{a.outcome}: {a.detail}" for key, a in retried.items() if a.outcome != "accepted"}
        accepted = load.ids("accepted") + [key for key, answer in retried.items() if answer.outcome == "accepted"]

        settled = await settle(stack, len(accepted), timeout=SETTLE_TIMEOUT, stall=STALL, what="API kill")
        report = await final_check(stack, planned, accepted)
        summary = print_figures(
            "API kill -9",
            load,
            report,
            answered_by_second_api=sum(1 for a in load.answers.values() if a.api == second.url and a.outcome == "accepted"),
            committed_but_unanswered=len(committed_unanswered),
            retried=len(retried),
            retried_accepted=len(retried) - len(retry_failures),
            settled_after_retries=f"{settled:.1f}s",
        )
        assert figures["errors"] == 0, f"{summary}\n{load.unanswered()}"
        assert unanswered, f"the kill left no request unanswered, so nothing was retried: {summary}"
        assert not retry_failures, f"{summary}\nretries not accepted: {list(retry_failures.items())[:5]}"
        assert len(set(accepted)) == MESSAGES, summary
        assert report.unfinished == 0, f"unfinished: {summary}"
        assert report.delivered == report.messages == MESSAGES and report.failed == 0, summary
        assert_nothing_lost_nothing_doubled(summary, report, stack)
