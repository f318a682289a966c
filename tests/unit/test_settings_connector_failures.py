"""CHAT4ALL_CONNECTOR_FAILURES injects failures per channel into the mock connectors."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from chat4all.adapters.connectors import mock_connectors
from chat4all.domain.errors import PermanentDeliveryFailure, TransientDeliveryFailure
from chat4all.entrypoints.profiles import injected_failures
from chat4all.entrypoints.settings import SettingsError, load_settings
from tests.unit.test_domain_failover import message_with


def connectors_for(tmp_path, **env: str):
    return mock_connectors(**injected_failures(load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path), **env})))


def results(connector, attempts: int = 200) -> list:
    sends = [(message_with(["whatsapp"], failover=False), [uuid4()]) for _ in range(attempts)]
    return asyncio.run(connector.deliver_many(sends))


def test_a_permanent_channel_fails_every_attempt_terminally_and_the_others_deliver(tmp_path) -> None:
    connectors = connectors_for(tmp_path, CHAT4ALL_CONNECTOR_FAILURES="whatsapp=permanent")
    assert all(isinstance(result.failure, PermanentDeliveryFailure) for result in results(connectors["whatsapp"]))
    assert all(result.failure is None for result in results(connectors["instagram"]))


def test_a_rate_fails_that_channel_transiently_and_the_old_variable_sets_the_rest(tmp_path) -> None:
    connectors = connectors_for(
        tmp_path, CHAT4ALL_CONNECTOR_FAILURES=" instagram = 1 ", CHAT4ALL_CONNECTOR_FAILURE_RATE="0"
    )
    assert all(isinstance(result.failure, TransientDeliveryFailure) for result in results(connectors["instagram"]))
    assert all(result.failure is None for result in results(connectors["whatsapp"]))
    everywhere = connectors_for(tmp_path, CHAT4ALL_CONNECTOR_FAILURE_RATE="1")
    assert all(result.failure is not None for result in results(everywhere["whatsapp"], 20))


@pytest.mark.parametrize("value", ["telegram=permanent", "whatsapp", "whatsapp=2", "whatsapp=often", "whatsapp=0.1,whatsapp=permanent"])
def test_a_malformed_value_names_the_variable(tmp_path, value: str) -> None:
    with pytest.raises(SettingsError, match="CHAT4ALL_CONNECTOR_FAILURES"):
        load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path), "CHAT4ALL_CONNECTOR_FAILURES": value})
