"""The outbox relay's loop: a send wakes it, and sends that come close together leave in one round
(each round is a transaction and a publish, whatever it carries)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from chat4all.entrypoints.background import WakeSignal, relay_forever
from chat4all.entrypoints.settings import SettingsError, load_settings


class Outbox:
    def __init__(self) -> None:
        self.pending = 0
        self.rounds: list[tuple[float, int]] = []

    async def relay_once(self) -> int:
        taken, self.pending = self.pending, 0
        self.rounds.append((time.monotonic(), taken))
        return taken


async def running(outbox: Outbox, signal: WakeSignal, **options) -> asyncio.Task[None]:
    task = asyncio.create_task(relay_forever(outbox.relay_once, signal, full_batch=100, idle_poll=5.0, **options))
    await asyncio.sleep(0.01)  # the first round, at start
    assert outbox.rounds
    return task


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_sends_a_few_milliseconds_apart_leave_in_one_round() -> None:
    outbox, signal = Outbox(), WakeSignal()
    task = await running(outbox, signal, linger=0.2)
    for _ in range(5):
        outbox.pending += 1
        signal.notify()
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.5)
    await stopped(task)

    assert [taken for _, taken in outbox.rounds] == [0, 5]


async def test_a_send_is_relayed_after_the_linger_not_after_the_poll() -> None:
    outbox, signal = Outbox(), WakeSignal()
    task = await running(outbox, signal, linger=0.05)
    outbox.pending += 1
    sent = time.monotonic()
    signal.notify()
    await asyncio.sleep(1.0)
    await stopped(task)

    assert [taken for _, taken in outbox.rounds] == [0, 1]
    waited = outbox.rounds[1][0] - sent
    assert 0.05 <= waited < 1.0, waited


async def test_without_a_linger_each_send_wakes_a_round_at_once() -> None:
    outbox, signal = Outbox(), WakeSignal()
    task = await running(outbox, signal)
    for _ in range(3):
        outbox.pending += 1
        signal.notify()
        await asyncio.sleep(0.05)
    await stopped(task)

    assert [taken for _, taken in outbox.rounds] == [0, 1, 1, 1]


def test_the_linger_setting() -> None:
    assert load_settings({}).outbox_relay_linger == timedelta(milliseconds=10)
    assert load_settings({"CHAT4ALL_OUTBOX_RELAY_LINGER_MS": "0"}).outbox_relay_linger == timedelta(0)
    assert load_settings({"CHAT4ALL_OUTBOX_RELAY_LINGER_MS": "25"}).outbox_relay_linger == timedelta(milliseconds=25)
    with pytest.raises(SettingsError, match="CHAT4ALL_OUTBOX_RELAY_LINGER_MS"):
        load_settings({"CHAT4ALL_OUTBOX_RELAY_LINGER_MS": "-1"})
