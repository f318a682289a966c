"""Input that no client should send is refused as invalid input, never stored raw or crashed on."""

from __future__ import annotations

import pytest

from chat4all.application.login_throttle import pair_key, user_key
from chat4all.application.uploads import CONTENT_TYPE_PATTERN
from chat4all.domain.conversations import ConversationMetadata
from chat4all.domain.errors import InvalidInput, NotAuthenticated
from chat4all.domain.messages import TextPayload
from chat4all.domain.uploads import validate_filename

PASSWORD = "correct horse battery"


@pytest.mark.parametrize(
    "name",
    ["invoice\u202egpj.exe", "a\u202ab", "a\u202db", "x\u2066y", "x\u2069y", "../../x", "..\\x", "a\x00b", "a\x85b"],
)
def test_filenames_that_could_be_paths_or_could_disguise_themselves_are_refused(name):
    with pytest.raises(InvalidInput) as raised:
        validate_filename(name)
    assert "filename" in raised.value.field_errors


@pytest.mark.parametrize("name", ["Relatório final — ünïcødé 📎 (v2).pdf", "; rm -rf ~ $(x) 'q' \"q\" <b>.txt", "名前.txt", "..."])
def test_odd_but_harmless_filenames_are_accepted(name):
    assert validate_filename(name) == name


@pytest.mark.parametrize(
    "value, ok",
    [
        ("application/pdf", True),
        ("text/plain; charset=utf-8", True),
        ("text/plain;x=\x00", False),
        ("text/plain\r\nX-Injected: 1", False),
        ("text/plain; a=\u00e9", False),
        ("text", False),
    ],
)
def test_content_types_are_plain_ascii_type_subtype_and_parameters(value, ok):
    assert bool(CONTENT_TYPE_PATTERN.fullmatch(value)) is ok


def test_message_text_may_not_hold_nul_but_may_hold_newlines_and_tabs():
    assert TextPayload("line one\n\tline two").text
    with pytest.raises(InvalidInput):
        TextPayload("a\x00b")


def test_conversation_names_are_single_line_and_descriptions_nul_free():
    ConversationMetadata("Team", "first line\nsecond line")
    for bad in ({"name": "a\nb"}, {"name": "a\x00"}, {"description": "a\x00"}):
        with pytest.raises(InvalidInput):
            ConversationMetadata(**bad)


def test_throttling_keys_are_printable_ascii_whatever_the_username():
    assert user_key("alice") == "user:alice"
    for hostile in ("a\x00b", "é" * 500, "\U0001f600" * 50, "x" * 10_000):
        key = user_key(hostile)
        assert key.isascii() and key.isprintable() and len(key) <= 128


async def test_login_with_an_impossible_username_is_an_ordinary_failure_without_a_lookup(hub):
    await hub.user("alice")
    with pytest.raises(NotAuthenticated):
        await hub.authenticate.execute("al\x00ice", PASSWORD, "192.0.2.1")
    keys = {key for key, _ in hub.store.login_failures}
    assert keys == {"user:al\\x00ice", "addr:192.0.2.1", pair_key("user:al\\x00ice", "addr:192.0.2.1")}
    assert all(key.isascii() and key.isprintable() and len(key) <= 128 for key in keys)


async def test_searching_for_an_impossible_username_finds_nobody(hub):
    await hub.user("alice")
    assert await hub.find_users.execute(username="ali\x00ce") == []
    assert await hub.find_users.execute(username="a" * 1000) == []
    assert [user.username for user in await hub.find_users.execute(username="alice")] == ["alice"]
