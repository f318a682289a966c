"""The webhook rules of the domain: the retry schedule, when an endpoint is disabled, and which
destinations a webhook may call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat4all.domain.errors import InvalidInput
from chat4all.domain.webhooks import (
    GIVE_UP_AFTER,
    after_failure,
    check_addresses,
    check_url,
    event_types,
    refused_address,
    retry_delay,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
jitters = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


def test_the_schedule_is_5_s_30_s_2_min_10_min_30_min_1_h_then_every_2_h() -> None:
    expected = [5, 30, 120, 600, 1800, 3600, 7200, 7200, 7200]
    assert [retry_delay(failures, 0.0).total_seconds() for failures in range(1, 10)] == expected


@settings(max_examples=300, deadline=None)
@given(failures=st.integers(min_value=1, max_value=60), jitter=jitters)
def test_jitter_moves_a_delay_by_at_most_a_tenth(failures: int, jitter: float) -> None:
    base = retry_delay(failures, 0.0)
    assert base * 0.9 <= retry_delay(failures, jitter) <= base * 1.1


def run_schedule(jitter_of: list[float]) -> list[datetime]:
    """The attempts of a delivery that always fails, until it is given up."""
    attempts, now, failing_since = [START], START, START
    for number, jitter in enumerate(jitter_of, start=1):
        outcome = after_failure(
            failures=number,
            first_attempt_at=START,
            failing_since=failing_since,
            now=now,
            jitter=jitter,
            error="HTTP 500",
        )
        if outcome.next_attempt_at is None:
            assert outcome.disable_reason and "24 h" in outcome.disable_reason
            return attempts
        assert outcome.next_attempt_at > now
        now = outcome.next_attempt_at
        attempts.append(now)
    raise AssertionError("never given up")


@settings(max_examples=300, deadline=None)
@given(st.lists(jitters, min_size=40, max_size=40))
def test_a_failing_delivery_is_tried_for_about_24_h_and_then_given_up(jitter_of: list[float]) -> None:
    attempts = run_schedule(jitter_of)
    assert attempts[-1] - START <= GIVE_UP_AFTER
    assert attempts[-1] - START >= timedelta(hours=20)  # the last 2 h step, jitter and all, falls short of 24 h
    assert [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)][:2] == [
        retry_delay(1, jitter_of[0]),
        retry_delay(2, jitter_of[1]),
    ]


def test_an_endpoint_failing_for_24_h_is_disabled_even_while_a_young_delivery_retries() -> None:
    now = START + timedelta(hours=24)
    young = after_failure(failures=1, first_attempt_at=now, failing_since=START, now=now, jitter=0.0, error="HTTP 503")
    assert young.next_attempt_at == now + timedelta(seconds=5)
    assert young.disable_reason == "every attempt failed for 24 h; last error: HTTP 503"
    recent = after_failure(
        failures=1, first_attempt_at=now, failing_since=now - timedelta(hours=23), now=now, jitter=0.0, error="x"
    )
    assert recent.disable_reason is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.100.100.200",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused_address(address) is not None
    with pytest.raises(InvalidInput) as refused:
        check_addresses("hooks.example.com", ["93.184.216.34", address])
    assert refused.value.code == "webhook_url_refused"


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refused_address(address) is None
    check_addresses("hooks.example.com", [address])


def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(InvalidInput, match="does not resolve"):
        check_addresses("nowhere.invalid", [])


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.com/x", "ftp://hooks.example.com/", "https://user:pw@hooks.example.com/", "https:///x"],
)
def test_only_https_urls_without_credentials(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url, allow_insecure=False)


def test_plain_http_only_when_allowed() -> None:
    assert check_url("http://127.0.0.1:8080/hook", allow_insecure=True) == ("127.0.0.1", 8080)
    assert check_url("https://hooks.example.com/x", allow_insecure=False) == ("hooks.example.com", 443)


def test_event_types_are_the_stored_ones() -> None:
    assert {kind.value for kind in event_types(["message.status", "message.created"])} == {
        "message.status",
        "message.created",
    }
    for wrong in (["typing"], ["message.nope"], []):
        with pytest.raises(InvalidInput):
            event_types(wrong)


@pytest.mark.parametrize("url", ["https://hooks.example.com/a b", "https://hooks.example.com/\x00", "https://a\nb.example.com/"])
def test_urls_with_spaces_or_control_characters_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url, allow_insecure=True)
