"""Connectors failing a fifth of their attempts (CHAT4ALL_CONNECTOR_FAILURE_RATE=0.2).

Within 30 seconds of the burst's end every message is `delivered` or `failed`: none is stuck,
none doubled. A failed channel has its reason in the history and its dead letter in
`delivery_dead_letters`. With 5 attempts a channel rarely spends its whole budget (0.2^5), so a
few file messages whose bytes were deleted from the bucket make sure the failure path is taken.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from tests.integration.faults.broker import end_offsets, read_topic
from tests.integration.faults.checking import final_check, settle
from tests.integration.faults.files import delete_file_bytes, upload_file
from tests.integration.faults.load import Load, Planned, plan
from tests.integration.faults.report import assert_nothing_lost_nothing_doubled, print_figures
from tests.integration.faults.stack import Stack

pytestmark = pytest.mark.services

MESSAGES = 600
MISSING_FILES = 3
CLIENTS = 50
FAILURE_RATE = "0.2"
DEADLINE = 30.0  # seconds after the burst by which every message is finished


async def test_transient_connector_failures_end_delivered_or_dead_lettered(tmp_path):
    from chat4all.application.work import DEAD_LETTER_STREAM as DEAD_LETTERS

    async with Stack(tmp_path, "flaky") as stack:
        conversations = await stack.deploy(CHAT4ALL_CONNECTOR_FAILURE_RATE=FAILURE_RATE)
        api = stack.processes["api"]
        dead_letter_topic = stack.topic(DEAD_LETTERS)
        dead_letters_before = await end_offsets(dead_letter_topic)

        # File messages whose bytes vanish from the bucket after the upload completed.
        conversation_id, sender, _ = conversations[0]
        doomed = []
        for index in range(MISSING_FILES):
            file_id = await upload_file(api.url, stack.auth(sender), os.urandom(2048), f"gone-{index}.bin")
            await asyncio.to_thread(delete_file_bytes, stack, file_id)
            doomed.append(Planned(str(uuid.uuid4()), conversation_id, sender, ("all",), file_id=file_id))
        planned = doomed + plan(conversations, MESSAGES)

        load = Load(stack, planned, CLIENTS, lambda _: api.url)
        await load.run()
        figures = load.figures()
        settled = await settle(stack, figures["accepted"], timeout=DEADLINE, what="flaky connectors")
        report = await final_check(stack, planned, load.ids("accepted"))
        dead_letters = await read_topic(dead_letter_topic, dead_letters_before)

        lettered = {(letter["message_id"], letter["channel"]) for letter in dead_letters}
        failed = {(message_id, channel) for message_id, channel, _ in report.failed_channels}
        missing_letters = sorted(failed - lettered)
        doomed_ids = {message.message_id for message in doomed}
        doomed_failed = {message_id for message_id, _ in failed if message_id in doomed_ids}
        summary = print_figures(
            "connector failure rate 0.2",
            load,
            report,
            burst=f"{load.finished - load.started:.1f}s",
            finished_after_burst=f"{settled:.1f}s",
            injected_failures=stack.count_in_logs(r"failed \(attempt \d+\)"),
            failed_channels=len(failed),
            dead_letters=len(dead_letters),
            failed_without_dead_letter=len(missing_letters),
        )
        assert figures["accepted"] == len(planned), f"{summary}\n{load.unanswered()}"
        assert report.unfinished == 0, f"not finished within {DEADLINE:.0f}s of the burst: {summary}"
        assert report.delivered + report.failed == report.messages == len(planned), summary
        assert doomed_failed == doomed_ids, f"file messages without their bytes did not fail: {summary}"
        assert all("missing" in reason for message_id, _, reason in report.failed_channels if message_id in doomed_ids)
        assert not missing_letters, f"failed channels with no dead letter: {missing_letters[:5]}; {summary}"
        assert len(dead_letters) == len(lettered) == len(failed), f"dead letters not one per failed channel: {summary}"
        assert all(letter.get("reason") for letter in dead_letters), f"dead letters without a reason: {dead_letters[:5]}"
        assert_nothing_lost_nothing_doubled(summary, report, stack)
