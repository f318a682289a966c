"""Static membership of the workers' consumer group (Kafka's `group.instance.id`, KIP-345).

A worker joins the group under an instance id that stays the same across its restarts. One that
comes back after a crash takes its partitions back at once, as the member it was: without
one, the broker waits for the dead incarnation's session to time out, then rebalances, and the
partitions it held get no new owner meanwhile. The broker does not end a static member's session
when it stops, either (it may come back): its partitions move to the other workers after the
session timeout, which the settings keep short.

The instance id is CHAT4ALL_WORKER_INSTANCE_ID, or "<host name>-<slot>" with the first slot
(0, 1, ...) no running worker of the group holds on this host. A worker holds its id through an
exclusive lock on a file in `lock_dir` for as long as it runs; the kernel drops the lock when the
process ends, however it ends, so a restarted worker takes the lowest free slot, its
predecessor's. On one host, two workers therefore never share an id: one given an id that another
holds stops at start-up, saying so. Two hosts given the same id would keep taking the partitions
from each other; a worker that finds a member with its id in the group when it starts logs it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from pathlib import Path
from typing import IO, Any

import mode
from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)

MAX_SLOTS = 1000


class InstanceIdTaken(RuntimeError):
    """Another worker of the group on this host holds the instance id."""


def host_instance_base(host: str | None = None) -> str:
    """The host name, as a Kafka name: other characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", host or socket.gethostname()) or "host"
    return name[:180]


def _try_lock(path: Path) -> IO[str] | None:
    handle = path.open("a+")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locks; several workers there need explicit ids
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class StaticMembership(mode.Service):
    """Holds this worker's instance id for the life of the process; when started (before the
    consumer joins), logs a member of the group that already has the id."""

    def __init__(self, instance_id: str, lock: IO[str], *, bootstrap: str, group: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance_id = instance_id
        self._lock = lock
        self.bootstrap = bootstrap
        self.group = group

    @classmethod
    def claim(cls, lock_dir: Path, group: str, instance_id: str | None, *, bootstrap: str) -> StaticMembership:
        """Takes `instance_id` (raises `InstanceIdTaken` if another worker here holds it), or
        the first free "<host name>-<slot>"."""
        lock_dir.mkdir(parents=True, exist_ok=True)
        wanted = [instance_id] if instance_id else [f"{host_instance_base()}-{slot}" for slot in range(MAX_SLOTS)]
        for candidate in wanted:
            lock = _try_lock(lock_dir / f"{group}--{candidate}.lock")
            if lock is not None:
                return cls(candidate, lock, bootstrap=bootstrap, group=group)
        if instance_id:
            raise InstanceIdTaken(
                f"CHAT4ALL_WORKER_INSTANCE_ID={instance_id}: another worker of group {group} on this host "
                f"runs under that id (lock in {lock_dir}); give each worker an id of its own"
            )
        raise InstanceIdTaken(f"{MAX_SLOTS} workers of group {group} already run on this host (locks in {lock_dir})")

    def faust_settings(self, *, session_timeout: float, heartbeat_interval: float, rebalance_timeout: float) -> dict:
        """The Faust app settings for joining the group (timeouts in seconds). `env={}`: Faust
        would otherwise let variables of its own (BROKER_SESSION_TIMEOUT, ...) override them."""
        return {
            "env": {},
            "consumer_group_instance_id": self.instance_id,
            "broker_session_timeout": session_timeout,
            "broker_heartbeat_interval": heartbeat_interval,
            "broker_rebalance_timeout": rebalance_timeout,
        }

    async def on_start(self) -> None:
        try:
            holders = await asyncio.wait_for(members_with_instance_id(self.bootstrap, self.group, self.instance_id), 5)
        except Exception as error:  # a check for the log only: never a reason not to start
            log.info("could not look for other members with instance id %s: %s", self.instance_id, error)
            return
        for member_id, client_host in holders:
            log.warning(
                "consumer group %s has a member with this worker's instance id %s (member %s, from %s); "
                "this worker takes its place. Expected when it is this worker's previous run, stopped or "
                "killed less than the session timeout ago. If another worker with this id is still "
                "running, the two will keep taking the partitions from each other: give each worker its "
                "own CHAT4ALL_WORKER_INSTANCE_ID.",
                self.group,
                self.instance_id,
                member_id,
                client_host,
            )
        log.info("joining consumer group %s as instance %s", self.group, self.instance_id)

    async def on_stop(self) -> None:
        self.release()

    def release(self) -> None:
        self._lock.close()


async def members_with_instance_id(bootstrap: str, group: str, instance_id: str) -> list[tuple[str, str]]:
    """(member id, client host) of the group's members that joined with `instance_id`: the
    broker names a static member `<instance id>-<uuid>`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    prefix = f"{instance_id}-"
    found = []
    for response in described:
        for entry in response.groups:
            for member in entry[5]:  # (member_id, client_id, client_host, metadata, assignment)
                if member[0].startswith(prefix) and len(member[0]) - len(prefix) == 36:
                    found.append((member[0], member[2]))
    return found
