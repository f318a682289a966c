"""CHAT4ALL_DELIVER_WHILE_ROUTING decides whether routing delivers on the process's own connectors."""

from __future__ import annotations

import pytest

from chat4all.entrypoints.bootstrap import build
from chat4all.entrypoints.settings import SettingsError, load_settings


@pytest.mark.parametrize(("value", "delivers"), [(None, True), ("true", True), ("false", False)])
async def test_routing_delivers_on_route_as_the_setting_says(tmp_path, value: str | None, delivers: bool) -> None:
    env = {"CHAT4ALL_DATA_DIR": str(tmp_path)}
    if value is not None:
        env["CHAT4ALL_DELIVER_WHILE_ROUTING"] = value
    hub = build("embedded", load_settings(env))
    try:
        assert (hub.route_message.deliver is hub.deliver_message) is delivers
        assert (hub.route_message.deliver is None) is not delivers
    finally:
        await hub.stop()


def test_a_wrong_value_names_the_setting(tmp_path) -> None:
    with pytest.raises(SettingsError, match="CHAT4ALL_DELIVER_WHILE_ROUTING"):
        load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path), "CHAT4ALL_DELIVER_WHILE_ROUTING": "sometimes"})
