"""The channels' settings: the secrets their providers sign inbound replies with.

`CHAT4ALL_CHANNEL_SECRET_<CHANNEL>` (e.g. `..._WHATSAPP`, `..._INSTAGRAM`): the secret the channel's
provider signs `POST /v1/channels/<channel>/inbound` with (Meta's "app secret"). There is no default:
a channel without one takes no inbound replies (403 `inbound_disabled`), so no deployment accepts
replies anyone could forge with a secret written in the documentation.
"""

from __future__ import annotations

import attrs

from chat4all.entrypoints.env_values import EnvReader, SettingsError

# The channels of the mock connectors (see adapters.connectors.mock_connectors).
CHANNELS = ("whatsapp", "instagram")
MIN_SECRET_LENGTH = 16


@attrs.frozen
class ChannelSettings:
    inbound_secrets: dict[str, str] = attrs.field(factory=dict)  # channel -> secret; absent: no inbound replies


def load_channel_settings(reader: EnvReader) -> ChannelSettings:
    secrets = {}
    for channel in CHANNELS:
        name = f"CHAT4ALL_CHANNEL_SECRET_{channel.upper()}"
        secret = reader.text(name, "")
        if secret and len(secret) < MIN_SECRET_LENGTH:
            raise SettingsError(f"{name} must be at least {MIN_SECRET_LENGTH} characters long")
        if secret:
            secrets[channel] = secret
    return ChannelSettings(secrets)
