"""The checker: `check` reads every message's status, per-channel deliveries and history straight
from PostgreSQL, counts the connector lines per (message, recipient, channel) over every worker
log, and returns the figures the tests print and assert on (a `Report`)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.integration.faults.load import Planned
from tests.integration.faults.report import Report
from tests.integration.faults.servers import admin_dsn, say
from tests.integration.faults.stack import Stack

CONNECTOR_LINE = re.compile(r"^INFO: Mensagem (\S+) enviada para o usuário (\S+) no (\w+)$")
DISPLAY_TO_CHANNEL = {"WhatsApp": "whatsapp", "Instagram": "instagram"}
UNFINISHED = ("accepted", "routed")


def unfinished_count(database: str) -> tuple[int, int, int]:
    """(messages, unfinished messages, outbox rows)."""
    with psycopg.connect(admin_dsn(database), connect_timeout=5) as connection:
        total, unfinished = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status IN ('accepted', 'routed')) FROM messages"
        ).fetchone()
        outbox = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return total, unfinished, outbox


async def settle(stack: Stack, expected: int, *, timeout: float, stall: float | None = None, what: str = "") -> float:
    """Waits until at least `expected` messages exist and none is unfinished; returns the seconds
    it took. Gives up after `timeout` seconds, or sooner once the number of unfinished messages has
    not gone down for `stall` seconds (stuck, not slow); the checker then reports what is stuck."""
    started = shown = progressed = time.monotonic()
    best = None
    while True:
        total, unfinished, outbox = await asyncio.to_thread(unfinished_count, stack.database)
        now = time.monotonic()
        if total >= expected and unfinished == 0:
            return now - started
        if best is None or unfinished < best:
            best, progressed = unfinished, now
        if now - started > timeout or (stall is not None and now - progressed > stall):
            say(f"{what}: gave up with {unfinished} of {total} unfinished after {now - started:.0f}s")
            return now - started
        if now - shown >= 10:
            say(f"{what}: {now - started:.0f}s: {total} messages, {unfinished} unfinished, {outbox} in the outbox")
            shown = now
        stack.assert_alive()
        await asyncio.sleep(0.25)


def connector_lines(paths: Iterable[Path]) -> Counter[tuple[str, str, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            found = CONNECTOR_LINE.match(line)
            if found:
                message_id, recipient, display = found.groups()
                counts[(message_id, recipient, DISPLAY_TO_CHANNEL.get(display, display))] += 1
    return counts


@dataclass
class Recorded:
    """What the database holds about a deployment's messages."""

    rows: list[tuple]  # (message, conversation, sender, recipient, channels, status) in acceptance order
    members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    deliveries: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    history: dict[str, list[tuple[str, str | None, str | None]]] = field(default_factory=lambda: defaultdict(list))
    # (message, channel, or None for its routing) -> id of the event that recorded it handled
    handled_at: dict[tuple[str, str | None], int] = field(default_factory=dict)
    outbox_left: int = 0


@dataclass
class OwedLines:
    """Connector lines, as (message, recipient, channel), the recorded outcomes call for."""

    must: set[tuple[str, str, str]] = field(default_factory=set)  # a delivered channel's lines
    may: set[tuple[str, str, str]] = field(default_factory=set)  # those, and a failed channel's partial sends


def read_recorded(database: str) -> Recorded:
    with psycopg.connect(admin_dsn(database), connect_timeout=5) as connection:
        recorded = Recorded(
            connection.execute(
                "SELECT id::text, conversation_id::text, sender_id::text, recipient_id::text, channels, status"
                " FROM messages ORDER BY seq"
            ).fetchall()
        )
        for conversation_id, user_id in connection.execute(
            "SELECT conversation_id::text, user_id::text FROM conversation_members"
        ):
            recorded.members[conversation_id].add(user_id)
        for message_id, channel, status in connection.execute(
            "SELECT message_id::text, channel, status FROM message_deliveries"
        ):
            recorded.deliveries[message_id][channel] = status
        for event_id, message_id, status, channel, detail in connection.execute(
            "SELECT id, message_id::text, status, channel, detail FROM message_events ORDER BY id"
        ):
            recorded.history[message_id].append((status, channel, detail))
            if status == "routed" or (channel is not None and status in ("delivered", "failed")):
                recorded.handled_at.setdefault((message_id, channel), event_id)
        recorded.outbox_left = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return recorded


def check(stack: Stack, planned: Iterable[Planned], must_exist: Iterable[str], *, ordered: bool = False) -> Report:
    """Everything the database and the worker logs say about this deployment's messages.

    `must_exist`: the ids the API answered 200 for (each must be in the database). `ordered`:
    each conversation's messages were sent one after the other (see `plan(per_client=...)`), so
    they must have been routed, and handled on each channel, in acceptance order."""
    planned_ids = {message.message_id for message in planned}
    recorded = read_recorded(stack.database)
    report = Report(outbox_left=recorded.outbox_left)
    lines = connector_lines(stack.worker_logs())
    report.lines = sum(lines.values())
    owed = OwedLines()
    for row in recorded.rows:
        _tally_message(report, recorded, row, planned_ids, owed)
    report.lost = sorted(set(must_exist) - {row[0] for row in recorded.rows})
    if ordered:
        report.out_of_order = _out_of_order(recorded.rows, recorded.handled_at)
    for key, count in lines.items():
        if count > 1:
            report.duplicate_lines.append((*key, count))
        if key not in owed.may:
            report.stray_lines.append(key)
    report.missing_lines = sorted(owed.must - set(lines))
    return report


def _tally_message(report: Report, recorded: Recorded, row: tuple, planned_ids: set[str], owed: OwedLines) -> None:
    message_id, conversation_id, sender, recipient, channels, status = row
    report.messages += 1
    if message_id not in planned_ids:
        report.unknown.append(message_id)
    if status == "delivered":
        report.delivered += 1
    elif status == "failed":
        report.failed += 1
    else:
        report.unfinished += 1
    recipients = [recipient] if recipient else sorted(recorded.members[conversation_id] - {sender})
    events = recorded.history[message_id]
    deliveries = recorded.deliveries[message_id]
    report.history_anomalies += _history_anomalies(message_id, status, list(channels), deliveries, events)
    for channel in channels:
        keys = {(message_id, user, channel) for user in recipients}
        outcome = deliveries.get(channel)
        if outcome == "delivered":
            owed.must |= keys
        owed.may |= keys
        if outcome == "failed":
            _tally_failure(report, message_id, channel, events)


def _tally_failure(
    report: Report, message_id: str, channel: str, events: list[tuple[str, str | None, str | None]]
) -> None:
    """A failed channel must say why, in each of its failure records."""
    reasons = [detail for state, where, detail in events if state == "failed" and where == channel]
    if not reasons or not all(reasons):
        report.failed_without_reason.append(message_id)
    report.failed_channels.append((message_id, channel, (reasons or [""])[0] or ""))


def _out_of_order(rows: list[tuple], handled_at: dict[tuple[str, str | None], int]) -> list[str]:
    """Per conversation (rows come in acceptance order), the routing and each channel's outcome
    must be recorded in that order too."""
    found = []
    last: dict[tuple[str, str | None], tuple[int, str]] = {}  # (conversation, channel) -> (event id, message)
    for message_id, conversation_id, _, _, channels, _ in rows:
        for channel in [None, *channels]:
            at = handled_at.get((message_id, channel))
            if at is None:
                continue
            previous = last.get((conversation_id, channel))
            if previous is not None and previous[0] > at:
                found.append(
                    f"{conversation_id} {channel or 'routing'}: {message_id} handled before {previous[1]}, accepted earlier"
                )
            if previous is None or previous[0] < at:
                last[(conversation_id, channel)] = (at, message_id)
    return found


def _history_anomalies(
    message_id: str,
    status: str,
    channels: list[str],
    deliveries: dict[str, str],
    events: list[tuple[str, str | None, str | None]],
) -> list[str]:
    """One entry per transition: accepted, routed, one outcome per channel, one final status."""
    if status in UNFINISHED:
        return []  # reported as unfinished
    seen = Counter((state, where) for state, where, _ in events)
    expected = Counter({("accepted", None): 1, ("routed", None): 1, (status, None): 1})
    for channel in channels:
        expected[(deliveries.get(channel, "missing"), channel)] += 1
    if seen != expected:
        return [f"{message_id}: history {sorted(seen.items(), key=str)} != {sorted(expected.items(), key=str)}"]
    if events[0][0] != "accepted" or events[-1][:2] != (status, None):
        return [f"{message_id}: history out of order {events}"]
    return []


async def final_check(
    stack: Stack, planned: Iterable[Planned], must_exist: Iterable[str], *, grace: float = 2.0, ordered: bool = False
) -> Report:
    """`check` after a short grace, so a connector line written just after the last status
    change (a concurrent duplicate delivery) is counted too."""
    await asyncio.sleep(grace)
    return await asyncio.to_thread(check, stack, list(planned), list(must_exist), ordered=ordered)
