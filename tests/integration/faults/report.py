"""What the checker found, and how the fault tests print and assert on it."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.integration.faults.load import Load
from tests.integration.faults.servers import say
from tests.integration.faults.stack import Stack


@dataclass
class Report:
    messages: int = 0  # rows in the messages table
    delivered: int = 0
    failed: int = 0
    unfinished: int = 0
    lost: list[str] = field(default_factory=list)  # answered 200, not in the database
    unknown: list[str] = field(default_factory=list)  # in the database, never planned
    duplicate_lines: list[tuple] = field(default_factory=list)  # (message, recipient, channel, count)
    missing_lines: list[tuple] = field(default_factory=list)  # delivered channel, recipient without a line
    stray_lines: list[tuple] = field(default_factory=list)  # lines for a channel/recipient not owed one
    history_anomalies: list[str] = field(default_factory=list)
    failed_without_reason: list[str] = field(default_factory=list)
    failed_channels: list[tuple[str, str, str]] = field(default_factory=list)  # (message, channel, reason)
    out_of_order: list[str] | None = None  # checked only for loads with a known order per conversation
    lines: int = 0
    outbox_left: int = 0

    def problems(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "unknown": len(self.unknown),
            "unfinished": self.unfinished,
            "duplicates": len(self.duplicate_lines),
            "missing_lines": len(self.missing_lines),
            "stray_lines": len(self.stray_lines),
            "history_anomalies": len(self.history_anomalies),
            "failed_without_reason": len(self.failed_without_reason),
            **({"out_of_order": len(self.out_of_order)} if self.out_of_order is not None else {}),
        }

    def summary(self) -> str:
        shown = {"in_db": self.messages, "delivered": self.delivered, "failed": self.failed, **self.problems()}
        shown["connector_lines"] = self.lines
        return ", ".join(f"{key} {value}" for key, value in shown.items())

    def examples(self, limit: int = 5) -> str:
        parts = []
        for name in (
            "lost",
            "unknown",
            "duplicate_lines",
            "missing_lines",
            "stray_lines",
            "history_anomalies",
            "failed_without_reason",
            "out_of_order",
        ):
            values = getattr(self, name) or []
            if values:
                parts.append(f"{name}: {values[:limit]}")
        return "; ".join(parts)


def print_figures(title: str, load: Load | None, report: Report, **extra: object) -> str:
    figures = {**(load.figures() if load else {}), **extra}
    text = ", ".join(f"{key} {value}" for key, value in figures.items())
    line = f"{title}: {text}; {report.summary()}"
    say(line)
    if report.examples():
        say(f"{title}: examples: {report.examples()}")
    return line


def assert_nothing_lost_nothing_doubled(figures: str, report: Report, stack: Stack) -> None:
    problems = {key: value for key, value in report.problems().items() if value}
    assert not problems, f"{figures}\nproblems: {problems}\n{report.examples()}\n{stack.diagnostics(1500)}"
