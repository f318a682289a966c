"""Channel failover's rules (domain.failover, Message, record_outcomes), property-tested: whatever
each channel does for each recipient, failover never delivers one recipient on two channels, and
every recipient ends in a terminal state that the message's status agrees with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat4all.domain.batch_outcomes import ChannelOutcome, record_outcomes
from chat4all.domain.errors import InvalidInput
from chat4all.domain.failover import check_failover, next_step, waiting_recipients
from chat4all.domain.messages import DeliveryStatus, Message, MessageDraft, MessageStatus, Priority, TextPayload

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHANNELS = ["whatsapp", "instagram", "telegram", "sms"]
SENDER = UUID(int=1)


def message_with(chain: list[str], failover: bool = True) -> Message:
    channels, rest = (tuple(chain[:1]), tuple(chain[1:])) if failover else (tuple(chain), ())
    draft = MessageDraft(UUID(int=99), UUID(int=98), SENDER, None, channels, TextPayload("hi"), Priority.NORMAL, rest)
    return Message.accept(draft, T0)


@st.composite
def scenarios(draw):
    """Recipients, a chain, and for each channel who refuses it (the connector stops at the first)."""
    recipients = [UUID(int=10 + n) for n in range(draw(st.integers(1, 5)))]
    chain = draw(st.lists(st.sampled_from(CHANNELS), min_size=2, max_size=4, unique=True))
    refusals = {channel: draw(st.sets(st.sampled_from(recipients))) for channel in chain}
    redeliver = draw(st.booleans())
    return recipients, chain, refusals, redeliver


def attempt(channel: str, waiting: list[UUID], refusing: set[UUID]) -> ChannelOutcome:
    """What a connector does: reaches the waiting recipients in order until one refuses."""
    reached = []
    for recipient in waiting:
        if recipient in refusing:
            unreached = waiting[len(reached) :]
            return ChannelOutcome(
                UUID(int=99), channel, failure=f"{channel} refused", reached=tuple(reached), unreached=tuple(unreached)
            )
        reached.append(recipient)
    return ChannelOutcome(UUID(int=99), channel, reached=tuple(reached))


@given(scenarios())
def test_failover_reaches_each_recipient_once_and_always_ends(scenario) -> None:
    recipients, chain, refusals, redeliver = scenario
    message = message_with(chain)
    delivered_on: dict[UUID, str] = {}
    last_attempt: dict[UUID, bool] = {}
    now = T0
    while message.pending_channels():
        assert len(message.pending_channels()) == 1  # one channel of the chain at a time
        channel = message.pending_channels()[0]
        now += timedelta(seconds=1)
        outcome = attempt(channel, waiting_recipients(recipients, delivered_on), refusals[channel])
        recorded = record_outcomes({message.id: message}, [outcome] * (2 if redeliver else 1), now)
        assert len(recorded.ended) == 1  # a redelivered outcome changes nothing
        for _, recipient in recorded.delivered_receipts:
            assert recipient not in delivered_on, "a recipient was delivered on two channels"
            delivered_on[recipient] = channel
        for each in recorded.attempts:
            last_attempt[each.recipient_id] = each.delivered
        assert [step for _, step in recorded.failovers] == (
            [] if outcome.failure is None or channel == chain[-1] else [chain[chain.index(channel) + 1]]
        )
    assert message.status.is_terminal
    assert set(last_attempt) == set(recipients)  # every recipient's last attempt is a terminal one
    everyone = set(delivered_on) == set(recipients)
    assert message.status is (MessageStatus.DELIVERED if everyone else MessageStatus.FAILED)
    assert all(last_attempt[recipient] == (recipient in delivered_on) for recipient in recipients)
    if not everyone:  # the chain ran out: its last channel was tried, and failed
        assert message.deliveries[chain[-1]] is DeliveryStatus.FAILED


@given(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=4, unique=True), st.data())
def test_next_step_follows_the_chain_once(chain, data) -> None:
    failed = data.draw(st.sampled_from(chain))
    tried = set(chain[: chain.index(failed) + 1])
    following = next_step(chain, tried, failed)
    assert following == (chain[chain.index(failed) + 1] if failed != chain[-1] else None)
    if following is not None:
        assert next_step(chain, tried | {following}, failed) is None  # a redelivered failure hands over nothing


def test_without_failover_a_failed_channel_fails_the_message_as_before() -> None:
    message = message_with(["whatsapp", "instagram"], failover=False)
    message.record_delivery("whatsapp", delivered=False, now=T0, detail="down")
    message.record_delivery("instagram", delivered=True, now=T0)
    assert message.status is MessageStatus.FAILED and message.history[-1].detail == "failed on: whatsapp"


def test_the_final_status_says_which_channel_delivered() -> None:
    message = message_with(["whatsapp", "instagram", "telegram"])
    message.record_delivery("whatsapp", delivered=False, now=T0, detail="refused")
    assert message.status is MessageStatus.ROUTED and message.pending_channels() == ["instagram"]
    assert (message.history[-1].status, message.history[-1].channel) == ("failover", "instagram")
    message.record_delivery("instagram", delivered=True, now=T0)
    assert message.status is MessageStatus.DELIVERED and "telegram" not in message.deliveries
    assert message.history[-1].detail == "delivered on: instagram (after whatsapp failed)"


@pytest.mark.parametrize(
    ("channels", "failover", "code"),
    [
        (("whatsapp",), ("instagram", "instagram"), "duplicate_failover_channel"),
        (("whatsapp",), ("whatsapp",), "duplicate_failover_channel"),
        (("whatsapp", "instagram"), ("telegram",), "failover_needs_one_channel"),
    ],
)
def test_a_chain_that_cannot_be_followed_is_refused(channels, failover, code) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_failover(channels, failover)
    assert refused.value.code == code


def test_failover_is_part_of_what_makes_two_sends_the_same_message() -> None:
    plain = MessageDraft(UUID(int=1), UUID(int=2), SENDER, None, ("whatsapp",), TextPayload("hi"), Priority.NORMAL)
    with_failover = MessageDraft(
        UUID(int=1), UUID(int=2), SENDER, None, ("whatsapp",), TextPayload("hi"), Priority.NORMAL, ("instagram",)
    )
    assert plain.fingerprint() != with_failover.fingerprint()
