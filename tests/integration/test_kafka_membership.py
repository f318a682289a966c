"""Against the real broker: a worker about to join its group finds a member that already joined
under its instance id, and says so (two workers sharing an id would keep fencing each other)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from chat4all.adapters.kafka import ensure_topics
from chat4all.adapters.kafka.membership import StaticMembership, members_with_instance_id
from tests.integration.kafka_fixtures import require_broker

pytestmark = pytest.mark.services


async def test_a_member_with_the_workers_instance_id_is_found_and_logged(tmp_path, caplog) -> None:
    bootstrap = await require_broker()
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"membership-{suffix}", f"membership-{suffix}"
    await ensure_topics(bootstrap, [topic], partitions=1)
    running = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, group_instance_id="rack1-7")
    await running.start()
    try:
        while not running.assignment():
            await asyncio.wait_for(running.getmany(timeout_ms=200), 30)

        found = await members_with_instance_id(bootstrap, group, "rack1-7")
        assert [member_id.startswith("rack1-7-") for member_id, _ in found] == [True]
        assert await members_with_instance_id(bootstrap, group, "rack1-") == []

        newcomer = StaticMembership.claim(tmp_path, group, "rack1-7", bootstrap=bootstrap)
        with caplog.at_level(logging.INFO, logger="chat4all.adapters.kafka.membership"):
            await newcomer.on_start()
        newcomer.release()
    finally:
        await running.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"consumer group {group} has a member with this worker's instance id rack1-7" in warnings[0]
    assert "give each worker its own CHAT4ALL_WORKER_INSTANCE_ID" in warnings[0]
