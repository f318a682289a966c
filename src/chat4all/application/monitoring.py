"""What operators read of the pipeline (GET /metrics): its counters and the outbox backlog."""

from __future__ import annotations

import attrs

from chat4all.application.ports import MetricsReport, OutboxReader


@attrs.define
class ReportMetrics:
    outbox: OutboxReader
    metrics: MetricsReport

    async def execute(self) -> bytes:
        try:
            backlog = await self.outbox.backlog()
        except Exception:  # the database being away must not hide the other metrics
            backlog = None
        return self.metrics.render(outbox_backlog=backlog)
