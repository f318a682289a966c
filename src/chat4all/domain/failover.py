"""Channel failover: channels tried in order for the recipients an earlier channel did not reach.

A message sent with `failover` goes out on its one channel first: the chain is that channel then
the failover channels, in the order given. When a channel of the chain fails terminally (a
permanent failure, or a transient one whose retries are spent: the connectors' rules), the
recipients it did not reach are handed to the next channel of the chain, and so on. One channel
of the chain is pending at a time, and a step goes only to the recipients no earlier step reached
(those whose receipt is not delivered), so failover never delivers one recipient on two channels.

Each step ends, so the chain does: the message is `delivered` when a step reached everyone it was
for (everyone is then reached), and `failed` when the last channel of the chain failed (the
recipients it did not reach end without the message). A message without failover keeps the
usual rule: `delivered` only if every one of its channels delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from uuid import UUID

import attrs

from chat4all.domain.errors import InvalidInput


def check_failover(channels: Sequence[str], failover: Sequence[str]) -> tuple[str, ...]:
    """The failover channels, once known to make a chain: distinct, none among `channels`, and
    `channels` a single channel (failover follows one channel; several are sent on all at once)."""
    failover = tuple(failover)
    if not failover:
        return ()
    if len(set(failover)) != len(failover) or set(failover) & set(channels):
        raise InvalidInput(
            "failover channels must be distinct and differ from the message's channel",
            code="duplicate_failover_channel",
            field_errors={"failover": ["each channel once, not the message's own channel"]},
        )
    if len(channels) != 1:
        raise InvalidInput(
            "failover needs exactly one channel in channels (the one tried first)",
            code="failover_needs_one_channel",
            field_errors={"channels": ["exactly one channel when failover is given"]},
        )
    return failover


def next_step(chain: Sequence[str], tried: Iterable[str], failed: str) -> str | None:
    """The channel that takes over after `failed` failed for good: the next one of the chain,
    unless there is none or it was tried already (a redelivered outcome changes nothing)."""
    if failed not in chain:
        return None
    position = chain.index(failed)
    if position + 1 >= len(chain):
        return None
    following = chain[position + 1]
    return None if following in set(tried) else following


def chain_delivered(chain: Sequence[str], outcomes: Mapping[str, bool | None]) -> bool:
    """Whether the chain ended with everyone reached: its last channel tried delivered.
    `outcomes`: per channel tried, True (delivered), False (failed) or None (pending)."""
    tried = [channel for channel in chain if channel in outcomes]
    return bool(tried) and outcomes[tried[-1]] is True


def waiting_recipients(recipients: Sequence[UUID], reached: Iterable[UUID]) -> list[UUID]:
    """Those of `recipients` (in order) a failover step is for: no earlier step reached them."""
    done = set(reached)
    return [recipient for recipient in recipients if recipient not in done]


@attrs.frozen
class DeliveryAttempt:
    """How one channel's attempt ended for one recipient of a message sent with failover."""

    message_id: UUID
    recipient_id: UUID
    channel: str
    delivered: bool
    at: datetime
    error: str | None = None


def attempts_of(
    message_id: UUID, channel: str, reached: Sequence[UUID], unreached: Sequence[UUID], at: datetime, error: str | None
) -> list[DeliveryAttempt]:
    """A channel outcome, per recipient: delivered to those it reached, failed (with `error`) for the others."""
    return [DeliveryAttempt(message_id, recipient, channel, True, at) for recipient in reached] + [
        DeliveryAttempt(message_id, recipient, channel, False, at, error) for recipient in unreached
    ]
