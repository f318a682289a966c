"""Failures injected into the mock connectors, per channel, for demos and tests:
`CHAT4ALL_CONNECTOR_FAILURES="whatsapp=permanent,instagram=0.1"`. A number is the share of
attempts that fail transiently (retried with back-off); `permanent` makes every attempt fail
terminally, without retry (what channel failover is for). `CHAT4ALL_CONNECTOR_FAILURE_RATE`
sets the transient share of every channel not named here."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from chat4all.adapters.connectors import MOCK_CHANNELS
from chat4all.entrypoints.env_values import EnvReader, SettingsError

VARIABLE = "CHAT4ALL_CONNECTOR_FAILURES"
PERMANENT = "permanent"


@attrs.frozen
class ConnectorFailures:
    rate: float = 0.0  # transient share of the channels not named
    rates: Mapping[str, float] = attrs.field(factory=dict)  # transient share per channel named
    permanent: frozenset[str] = frozenset()  # channels whose every attempt fails terminally


def load_connector_failures(reader: EnvReader, channels: tuple[str, ...] = MOCK_CHANNELS) -> ConnectorFailures:
    """Parses the variable; names outside `channels` (the mock connectors') are refused."""
    rates: dict[str, float] = {}
    permanent: set[str] = set()
    for item in filter(None, (part.strip() for part in (reader.env.get(VARIABLE) or "").split(","))):
        channel, _, value = (piece.strip() for piece in item.partition("="))
        if channel not in channels or channel in rates or channel in permanent:
            raise SettingsError(f"{VARIABLE}: {channel!r} is not a channel named once (channels: {', '.join(channels)})")
        if value == PERMANENT:
            permanent.add(channel)
        else:
            rates[channel] = EnvReader({VARIABLE: value}).fraction(VARIABLE, 0.0) if value else -1.0
            if rates[channel] < 0:
                raise SettingsError(f"{VARIABLE}: {channel!r} needs '=permanent' or '=<share between 0 and 1>'")
    rate = reader.fraction("CHAT4ALL_CONNECTOR_FAILURE_RATE", 0.0)
    return ConnectorFailures(rate, rates, frozenset(permanent))
