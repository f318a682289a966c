from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat4all.domain.errors import InvalidInput
from chat4all.domain.users import AccessToken, validate_new_password, validate_username

NOW = datetime(2025, 1, 1, tzinfo=UTC)


@given(st.from_regex(r"[A-Za-z0-9_.-]{3,32}", fullmatch=True))
def test_usernames_of_3_to_32_safe_characters_are_accepted(username):
    assert validate_username(username) == username


@pytest.mark.parametrize("username", ["ab", "a" * 33, "with space", "émile", "semi;colon", ""])
def test_other_usernames_are_rejected(username):
    with pytest.raises(InvalidInput):
        validate_username(username)


@pytest.mark.parametrize("length, ok", [(7, False), (8, True), (256, True), (257, False)])
def test_password_length_limits(length, ok):
    if ok:
        validate_new_password("p" * length)
    else:
        with pytest.raises(InvalidInput):
            validate_new_password("p" * length)


def test_token_is_valid_until_just_before_it_expires():
    token = AccessToken("hash", UUID(int=1), NOW, NOW + timedelta(hours=1))
    assert token.is_valid_at(NOW)
    assert token.is_valid_at(token.expires_at - timedelta(microseconds=1))
    assert not token.is_valid_at(token.expires_at)


def test_revoked_token_is_invalid():
    token = AccessToken("hash", UUID(int=1), NOW, NOW + timedelta(hours=1), revoked_at=NOW)
    assert not token.is_valid_at(NOW)
