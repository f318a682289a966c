"""The in-process notifier (the embedded profile's, and the local half of PostgreSQL's)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from chat4all.adapters.notifier import InProcessEventNotifier

ALICE, BOB = UUID(int=1), UUID(int=2)


async def test_a_notification_between_listening_and_waiting_is_kept_for_the_wait() -> None:
    notifier = InProcessEventNotifier()
    async with notifier.listen(ALICE) as wakes:
        notifier.notify([ALICE])
        assert await wakes.wait(0)
        assert not await wakes.wait(0.01)  # consumed by the wait it ended


async def test_only_the_notified_users_readers_wake_and_every_one_of_them_does() -> None:
    notifier = InProcessEventNotifier()
    async with notifier.listen(ALICE) as first, notifier.listen(ALICE) as second, notifier.listen(BOB) as other:
        waits = [asyncio.create_task(wakes.wait(1)) for wakes in (first, second, other)]
        await asyncio.sleep(0)
        notifier.notify([ALICE, ALICE])
        assert await asyncio.gather(*waits) == [True, True, False]


async def test_notify_all_wakes_every_reader_and_leaving_stops_listening() -> None:
    notifier = InProcessEventNotifier()
    async with notifier.listen(ALICE) as alice, notifier.listen(BOB) as bob:
        notifier.notify_all()
        assert await alice.wait(0) and await bob.wait(0)
        assert notifier.listening(ALICE) == 1
    assert notifier.listening(ALICE) == notifier.listening(BOB) == 0
    notifier.notify([ALICE])  # nobody listens: nothing to do, nothing kept


async def test_a_watcher_hears_every_notification_about_anyone() -> None:
    notifier, heard = InProcessEventNotifier(), []
    notifier.watch(lambda: heard.append("appended"))
    notifier.notify([ALICE])
    notifier.notify([BOB, ALICE])
    notifier.notify_all()
    notifier.notify([])  # nothing was appended
    assert heard == ["appended"] * 3
