"""Pipeline metrics in Prometheus' text format (prometheus_client does the exposition)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Delivery latency spans milliseconds (healthy) to tens of seconds (retries, backlog after an outage).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class PrometheusMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._accepted = Counter("chat4all_messages_accepted", "Messages accepted by this process", registry=r)
        self._routed = Counter("chat4all_messages_routed", "Messages routed to their channels", registry=r)
        self._deliveries = Counter(
            "chat4all_channel_deliveries", "Channel deliveries that ended", ["channel", "outcome"], registry=r
        )
        self._retries = Counter("chat4all_delivery_retries", "Connector attempts retried after a transient failure", ["channel"], registry=r)
        self._dead = Counter("chat4all_dead_letters", "Deliveries sent to the dead-letter topic", ["channel"], registry=r)
        self._latency = Histogram(
            "chat4all_accept_to_final_seconds",
            "Time from acceptance to the message's terminal status",
            ["status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._backlog = Gauge("chat4all_outbox_backlog", "Accepted events not yet relayed to the bus", registry=r)

    def message_accepted(self) -> None:
        self._accepted.inc()

    def message_routed(self) -> None:
        self._routed.inc()

    def delivery_retried(self, channel: str) -> None:
        self._retries.labels(channel).inc()

    def channel_finished(self, channel: str, *, delivered: bool) -> None:
        self._deliveries.labels(channel, "delivered" if delivered else "failed").inc()

    def dead_lettered(self, channel: str) -> None:
        self._dead.labels(channel).inc()

    def message_finished(self, status: str, seconds_since_accepted: float) -> None:
        self._latency.labels(status).observe(max(seconds_since_accepted, 0.0))

    def render(self, *, outbox_backlog: int | None = None) -> bytes:
        if outbox_backlog is not None:
            self._backlog.set(outbox_backlog)
        return generate_latest(self.registry)
