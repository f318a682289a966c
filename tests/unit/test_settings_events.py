"""CHAT4ALL_EVENTS_*: the defaults a deployment gets, each variable reaching what it governs, and a
wrong value stopping start-up with the variable's name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat4all.entrypoints.http.ws_protocol import MAX_CLIENT_FRAME, LiveWebSocketProtocol
from chat4all.entrypoints.settings import SettingsError, load_settings
from chat4all.entrypoints.web import http_config, server_config


def test_the_defaults():
    events = load_settings({}).events
    assert events.retention == timedelta(days=7)
    assert (events.max_connections_per_user, events.max_connections, events.queue_size) == (10, 800, 500)
    assert (events.slow_client, events.keepalive, events.token_check) == (10, 15, 5)
    assert events.typing_interval == timedelta(seconds=2)


def test_the_process_limit_follows_the_http_limit_unless_set():
    assert load_settings({"CHAT4ALL_HTTP_MAX_CONNECTIONS": "50"}).events.max_connections == 40
    assert load_settings({"CHAT4ALL_EVENTS_MAX_CONNECTIONS": "30"}).events.max_connections == 30


def test_each_variable_reaches_what_it_governs():
    settings = load_settings({
        "CHAT4ALL_EVENTS_RETENTION_DAYS": "2", "CHAT4ALL_EVENTS_MAX_CONNECTIONS_PER_USER": "3",
        "CHAT4ALL_EVENTS_QUEUE_SIZE": "50", "CHAT4ALL_EVENTS_SLOW_CLIENT_SECONDS": "4",
        "CHAT4ALL_EVENTS_KEEPALIVE_SECONDS": "20", "CHAT4ALL_EVENTS_TOKEN_CHECK_SECONDS": "9",
        "CHAT4ALL_EVENTS_TYPING_INTERVAL_MS": "1500",
    })
    events = settings.events
    assert (events.retention, events.max_connections_per_user, events.queue_size) == (timedelta(days=2), 3, 50)
    assert (events.slow_client, events.keepalive, events.token_check) == (4, 20, 9)
    assert events.typing_interval == timedelta(milliseconds=1500)
    config = server_config(object(), settings, "127.0.0.1", 8000)
    assert config.ws is LiveWebSocketProtocol and config.ws_max_size == MAX_CLIENT_FRAME
    assert (config.ws_ping_interval, config.ws_ping_timeout, config.ws_per_message_deflate) == (20, 20, False)
    assert (http_config(settings).events_keepalive, http_config(settings).events_send_timeout) == (20, 4)


@pytest.mark.parametrize(
    "name, value",
    [
        ("CHAT4ALL_EVENTS_RETENTION_DAYS", "0"),
        ("CHAT4ALL_EVENTS_MAX_CONNECTIONS_PER_USER", "none"),
        ("CHAT4ALL_EVENTS_MAX_CONNECTIONS", "1000"),  # not below CHAT4ALL_HTTP_MAX_CONNECTIONS
        ("CHAT4ALL_EVENTS_QUEUE_SIZE", "0"),
        ("CHAT4ALL_EVENTS_SLOW_CLIENT_SECONDS", "0"),
        ("CHAT4ALL_EVENTS_KEEPALIVE_SECONDS", "601"),
        ("CHAT4ALL_EVENTS_TYPING_INTERVAL_MS", "10"),
    ],
)
def test_a_wrong_value_names_its_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
