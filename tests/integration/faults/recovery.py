"""When deliveries resume after a worker is killed, from what the database records.

A message's routing and delivery outcomes are recorded with the time they were handled; the
first such record after a moment, among the messages a given worker's partitions carry, is when
that work resumed. Partitions come from the workers' "partitions assigned" log lines, and a
message's partition from its key (the conversation id), as the publishers' partitioner picks it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from aiokafka.partitioner import murmur2

from tests.integration.faults.checking import connector_lines
from tests.integration.faults.servers import admin_dsn
from tests.integration.faults.stack import Process, Stack

RESUME_WITHIN = 10.0  # seconds: the recovery bound the README states
ASSIGNED = re.compile(r"partitions assigned: \d+ \((.*)\)$")


def partition_of(key: str, partitions: int) -> int:
    """The partition aiokafka's default partitioner sends `key` to."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def last_assigned(process: Process, topic: str) -> set[int]:
    """The partitions of `topic` the process held last, from its log."""
    held: set[int] = set()
    for line in process.err.read_text(errors="replace").splitlines():
        found = ASSIGNED.search(line)
        if found:
            held = {int(tp[len(topic) + 1 : -1]) for tp in found.group(1).split(", ") if tp.startswith(f"{topic}[")}
    return held


def conversations_on(conversations: Iterable[tuple[str, str, str]], partitions: set[int], count: int) -> list[str]:
    return [conversation_id for conversation_id, *_ in conversations if partition_of(conversation_id, count) in partitions]


def first_handled_after(database: str, since: float, conversation_ids: list[str]) -> float | None:
    """Epoch seconds of the first routing or delivery outcome recorded after `since` (epoch
    seconds) for a message of these conversations, or None."""
    with psycopg.connect(admin_dsn(database), connect_timeout=5) as connection:
        (first,) = connection.execute(
            "SELECT min(e.at) FROM message_events e JOIN messages m ON m.id = e.message_id"
            " WHERE e.status <> 'accepted' AND e.at > %s AND m.conversation_id::text = ANY(%s)",
            (datetime.fromtimestamp(since, UTC), conversation_ids),
        ).fetchone()
    return None if first is None else first.timestamp()


async def resumed_after(stack: Stack, since: float, conversation_ids: list[str], *, timeout: float = 60.0) -> float:
    """Seconds from `since` (epoch seconds) to the first outcome recorded for these conversations;
    `timeout` (the test then fails on it) if none came by then."""
    assert conversation_ids, "no conversation to watch"
    while time.time() - since < timeout:
        first = await asyncio.to_thread(first_handled_after, stack.database, since, conversation_ids)
        if first is not None:
            return first - since
        stack.assert_alive()
        await asyncio.sleep(0.2)
    return timeout


def split_resent_at_a_kill(
    stack: Stack, duplicates: list[tuple], killed_at: dict[Path, float]
) -> tuple[list[tuple], list[tuple]]:
    """Splits doubled connector lines (message, recipient, channel, count) into those the README
    allows and the others. A mock provider sends inside the transaction that records the send in
    the ledger, so a worker killed before that commit has written lines the ledger never got: the
    next owner of the partition sends them again. Such a line is allowed twice: once in the log
    of a killed incarnation (`killed_at`: its stdout -> when it was killed), once in a later one,
    with the ledger's record made after the kill (so the killed worker's commit never happened)."""
    if not duplicates:
        return [], []
    with psycopg.connect(admin_dsn(stack.database), connect_timeout=5) as connection:
        recorded = {
            (message_id, recipient_id, channel): sent_at.timestamp()
            for channel, message_id, recipient_id, sent_at in connection.execute(
                "SELECT channel, message_id::text, recipient_id::text, sent_at FROM connector_sends"
                " WHERE message_id::text = ANY(%s)",
                ([message_id for message_id, *_ in duplicates],),
            )
        }
    per_log = {process.out: connector_lines([process.out]) for process in stack.all_processes()}
    allowed, others = [], []
    for message_id, recipient, channel, count in duplicates:
        key = (message_id, recipient, channel)
        logs = [log for log, lines in per_log.items() if key in lines]  # oldest incarnation first
        first = killed_at.get(logs[0]) if count == 2 and len(logs) == 2 else None
        resent = first is not None and recorded.get(key, 0.0) > first
        (allowed if resent else others).append((message_id, recipient, channel, count))
    return allowed, others
