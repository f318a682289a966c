"""Webhook deliveries are kept in the database: what a stopped process still owed is sent by the
next one (embedded profile: the same data directory, a new process)."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.http.profiles import embedded
from tests.integration.http.test_webhooks_http import ALLOW_PRIVATE, Scene
from tests.integration.http.webhook_receiver import Receiver

pytestmark = pytest.mark.services


async def test_what_was_owed_before_a_restart_arrives_after_it(tmp_path) -> None:
    receiver = Receiver()
    await receiver.start()
    await receiver.stop()  # down, on a port of its own: the first attempts fail
    async with embedded(tmp_path, ALLOW_PRIVATE) as first:
        scene = await Scene(first).setup()
        created = await scene.webhook(receiver)
        await scene.send(3)
        for _ in range(100):  # until each delivery has failed once and waits for its retry
            deliveries = await scene.deliveries(created["id"])
            if len(deliveries) == 3 and all(each["attempts"] >= 1 for each in deliveries):
                break
            await asyncio.sleep(0.1)
        assert len(deliveries) == 3 and {each["state"] for each in deliveries} == {"pending"}
    await receiver.start()
    try:
        async with embedded(tmp_path, ALLOW_PRIVATE) as second:
            await receiver.wait_for(3, timeout=30)
            scene.hub, scene.client = second, second.client
            assert {each["state"] for each in await scene.deliveries(created["id"])} == {"succeeded"}
        assert all(each["valid"] for each in receiver.received) and len(set(receiver.ids())) == 3
    finally:
        await receiver.stop()
