"""CHAT4ALL_WEBHOOK_*: outbound webhooks."""

from __future__ import annotations

import attrs

from chat4all.entrypoints.env_values import EnvReader


@attrs.frozen
class WebhookSettings:
    # Loopback, private and link-local destinations, and plain HTTP: for tests and single-machine setups.
    allow_private: bool = False
    concurrency_per_endpoint: int = 8  # attempts in flight per webhook, per process
    max_in_flight: int = 256  # attempts in flight per process, all webhooks together


def load_webhook_settings(reader: EnvReader) -> WebhookSettings:
    return WebhookSettings(
        allow_private=reader.choice("CHAT4ALL_WEBHOOK_ALLOW_PRIVATE", ("true", "false"), "false") == "true",
        concurrency_per_endpoint=reader.integer("CHAT4ALL_WEBHOOK_CONCURRENCY_PER_ENDPOINT", 8, minimum=1, maximum=256),
        max_in_flight=reader.integer("CHAT4ALL_WEBHOOK_MAX_IN_FLIGHT", 256, minimum=1, maximum=10_000),
    )
