"""The channels' inbound secrets: none by default (no channel takes replies), each read from its own
variable, and one too short to resist guessing stops start-up with a message naming it."""

from __future__ import annotations

import pytest

from chat4all.entrypoints.settings import SettingsError, load_settings


def test_by_default_no_channel_has_a_secret() -> None:
    assert load_settings({}).channels.inbound_secrets == {}


def test_each_channel_reads_its_own_secret() -> None:
    settings = load_settings({"CHAT4ALL_CHANNEL_SECRET_WHATSAPP": "w" * 16, "CHAT4ALL_CHANNEL_SECRET_INSTAGRAM": ""})
    assert settings.channels.inbound_secrets == {"whatsapp": "w" * 16}


def test_a_short_secret_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="CHAT4ALL_CHANNEL_SECRET_INSTAGRAM"):
        load_settings({"CHAT4ALL_CHANNEL_SECRET_INSTAGRAM": "short"})
