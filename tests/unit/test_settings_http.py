"""The HTTP edge's settings: defaults a deployment gets, each variable reaching what it governs,
and a wrong value stopping start-up with the variable's name."""

from __future__ import annotations

import pytest

from chat4all.entrypoints.http.allowed_hosts import host_name
from chat4all.entrypoints.http.server import GuardedHttpToolsProtocol
from chat4all.entrypoints.settings import SettingsError, load_settings
from chat4all.entrypoints.web import allowed_hosts, server_config


def test_the_defaults_are_small_enough_to_stop_slow_clients():
    http = load_settings({}).http
    assert (http.header_timeout, http.body_timeout, http.keep_alive_timeout, http.max_connections) == (10, 30, 5, 1000)
    assert http.allowed_hosts is None and http.metrics_token is None and http.metrics_port is None
    assert http.metrics_address == "127.0.0.1"


def test_each_variable_reaches_the_server_configuration():
    settings = load_settings({
        "CHAT4ALL_HTTP_HEADER_TIMEOUT_SECONDS": "7", "CHAT4ALL_HTTP_BODY_TIMEOUT_SECONDS": "45",
        "CHAT4ALL_HTTP_KEEP_ALIVE_SECONDS": "2", "CHAT4ALL_HTTP_MAX_CONNECTIONS": "50",
    })
    config = server_config(object(), settings, "127.0.0.1", 8000)
    assert config.timeout_keep_alive == 2 and config.server_header is False
    assert config.http.func is GuardedHttpToolsProtocol and config.http.keywords["limits"] == settings.http
    assert (settings.http.header_timeout, settings.http.body_timeout, settings.http.max_connections) == (7, 45, 50)


@pytest.mark.parametrize(
    "name, value",
    [
        ("CHAT4ALL_HTTP_HEADER_TIMEOUT_SECONDS", "0"),
        ("CHAT4ALL_HTTP_BODY_TIMEOUT_SECONDS", "soon"),
        ("CHAT4ALL_HTTP_KEEP_ALIVE_SECONDS", "-1"),
        ("CHAT4ALL_HTTP_MAX_CONNECTIONS", "0"),
        ("CHAT4ALL_ALLOWED_HOSTS", "https://api.example"),
        ("CHAT4ALL_ALLOWED_HOSTS", "api.example:8000"),
        ("CHAT4ALL_METRICS_TOKEN", "short"),
        ("CHAT4ALL_METRICS_PORT", "70000"),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


@pytest.mark.parametrize(
    "header, name",
    [("example.com", "example.com"), ("Example.COM:8000", "example.com"), ("example.com.", "example.com"),
     ("[::1]:8000", "::1"), ("[::1]", "::1"), ("127.0.0.1:80", "127.0.0.1"), ("evil.example:x", "evil.example:x")],
)
def test_the_host_name_is_the_header_without_its_port(header, name):
    assert host_name(header) == name


def test_by_default_loopback_the_bind_address_and_the_public_host_are_allowed():
    settings = load_settings({"CHAT4ALL_PUBLIC_URL": "https://Chat.Example/api"})
    assert allowed_hosts(settings, "10.0.0.5") == {"localhost", "127.0.0.1", "::1", "10.0.0.5", "chat.example"}
    assert allowed_hosts(settings, "0.0.0.0") == {"localhost", "127.0.0.1", "::1", "chat.example"}  # no name in it
    assert allowed_hosts(load_settings({}), "[::]") == {"localhost", "127.0.0.1", "::1"}


def test_a_configured_list_replaces_the_defaults_and_a_star_allows_any():
    settings = load_settings({"CHAT4ALL_ALLOWED_HOSTS": "API.example, [2001:db8::1]", "CHAT4ALL_PUBLIC_URL": "https://x.example"})
    assert allowed_hosts(settings, "127.0.0.1") == {"api.example", "2001:db8::1"}
    assert allowed_hosts(load_settings({"CHAT4ALL_ALLOWED_HOSTS": "*"}), "127.0.0.1") is None


def test_the_metrics_port_may_not_be_the_api_port():
    from chat4all.entrypoints.cli import serve

    with pytest.raises(SettingsError, match="CHAT4ALL_METRICS_PORT"):
        serve(load_settings({"CHAT4ALL_METRICS_PORT": "8000"}), "127.0.0.1", 8000, demo=False)


class _Transport:
    aborted = False

    def abort(self) -> None:
        self.aborted = True


class _Flow:
    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


def _stalled_protocol(body_timeout: float) -> GuardedHttpToolsProtocol:
    import asyncio
    import logging
    from types import SimpleNamespace

    protocol = GuardedHttpToolsProtocol.__new__(GuardedHttpToolsProtocol)
    protocol.limits = SimpleNamespace(body_timeout=body_timeout)
    protocol.loop = asyncio.get_running_loop()
    protocol.transport, protocol.flow, protocol.logger = _Transport(), _Flow(), logging.getLogger("test")
    protocol._stalled = None
    return protocol


async def test_an_answer_the_client_takes_nothing_of_for_the_body_timeout_is_given_up():
    import asyncio

    stalled = _stalled_protocol(0.05)
    stalled.pause_writing()  # the client's buffers are full: it has stopped reading
    await asyncio.sleep(0.15)
    assert stalled.transport.aborted

    slow = _stalled_protocol(0.1)
    for _ in range(4):  # a slow reader: its buffers fill, then it takes some, again and again
        slow.pause_writing()
        await asyncio.sleep(0.05)
        slow.resume_writing()
    await asyncio.sleep(0.15)
    assert not slow.transport.aborted
