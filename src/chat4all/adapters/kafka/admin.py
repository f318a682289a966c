"""Topic administration and a broker health check.

Topics are created explicitly (not left to broker auto-creation) so they get the partition
count the deployment asks for: partitions are the unit of parallelism for the worker, and a
key always maps to the same partition only while the count stays the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Creates the topics that do not exist yet; returns the names it created. Idempotent.

    An existing topic is left as it is (changing its partition count would move keys to other
    partitions); a count different from `partitions` is only logged.
    """
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = await _existing(admin, wanted, partitions)
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return []
        created = await _create(admin, missing, partitions, replication_factor, timeout)
        await _wait_until_visible(admin, created, timeout)
        return created
    finally:
        await admin.close()


async def _existing(admin: AIOKafkaAdminClient, wanted: list[str], partitions: int) -> set[str]:
    # Only ask about topics known to exist: a metadata request naming a missing topic makes a
    # broker with auto.create.topics.enable create it, with the broker's default partitions.
    present = set(await admin.list_topics())
    known = [name for name in wanted if name in present]
    described = await admin.describe_topics(known) if known else []
    existing = {entry["topic"]: entry for entry in described if entry["error_code"] == 0}
    for name, entry in existing.items():
        if len(entry["partitions"]) != partitions:
            log.warning(
                "topic %s exists with %d partitions (configured: %d); left unchanged",
                name,
                len(entry["partitions"]),
                partitions,
            )
    return set(existing)


async def _create(
    admin: AIOKafkaAdminClient, missing: list[str], partitions: int, replication_factor: int, timeout: float
) -> list[str]:
    response = await admin.create_topics(
        [NewTopic(name, partitions, replication_factor) for name in missing], timeout_ms=int(timeout * 1000)
    )
    created = []
    for error in response.topic_errors:
        name, code = error[0], error[1]
        if code == 0:
            created.append(name)
            log.info("created topic %s with %d partitions", name, partitions)
        elif code != TopicAlreadyExistsError.errno:  # a concurrent creator won the race: fine
            message = error[2] if len(error) > 2 else ""
            raise for_code(code)(f"cannot create topic {name}: {message}")
    return created


async def _wait_until_visible(admin: AIOKafkaAdminClient, topics: list[str], timeout: float) -> None:
    """CreateTopics returns before every partition has a leader; wait for that so the first
    produce or subscribe does not race the broker's metadata."""
    deadline = asyncio.get_running_loop().time() + timeout
    while topics:
        described = await admin.describe_topics(topics)
        ready = all(
            entry["error_code"] == 0 and entry["partitions"] and all(p["leader"] >= 0 for p in entry["partitions"])
            for entry in described
        )
        if ready:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics {topics} have no partition leaders after {timeout}s")
        await asyncio.sleep(0.1)


async def check_broker(bootstrap_servers: str, timeout: float = 2.0) -> None:
    """Raises unless a broker answers a metadata request within `timeout` seconds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.describe_cluster(), timeout)
    finally:
        await admin.close()


async def commit_end_offsets(
    bootstrap_servers: str, group: str, topics: Iterable[str], *, timeout: float = 30.0
) -> None:
    """Sets a consumer group's committed offsets to the current end of every partition of `topics`.

    For a new group that should handle only events published from now on (a worker group for a
    fresh deployment that shares a broker, e.g. in tests), instead of every retained event.
    Only safe while no member of the group is consuming.
    """
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        described = await admin.describe_topics(wanted)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(entry["topic"], partition["partition"])
        for entry in described
        if entry["error_code"] == 0
        for partition in entry["partitions"]
    ]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=int(timeout * 1000),
    )
    await asyncio.wait_for(consumer.start(), timeout)
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()
