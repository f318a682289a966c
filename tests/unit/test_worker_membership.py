"""A worker joins its consumer group with the timeouts of the settings and a stable instance id
(static membership): the same id after a crash, a distinct one for each worker on a host."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from chat4all.adapters.kafka.membership import StaticMembership, host_instance_base
from chat4all.entrypoints.bootstrap import build
from chat4all.entrypoints.settings import SettingsError, load_settings
from chat4all.entrypoints.worker import create_faust_app
from tests.unit.test_settings_s3 import DISTRIBUTED


def worker_consumer(app):
    return app.consumer._thread._create_worker_consumer(app.transport)


async def test_the_consumer_joins_with_the_settings_whatever_faust_finds_in_the_environment(
    tmp_path, monkeypatch
) -> None:
    # Faust lets these variables of its own override what the app is built with.
    monkeypatch.setenv("BROKER_SESSION_TIMEOUT", "60")
    monkeypatch.setenv("BROKER_HEARTBEAT_INTERVAL", "20")
    monkeypatch.setenv("BROKER_REBALANCE_TIMEOUT", "60")
    monkeypatch.setenv("CONSUMER_GROUP_INSTANCE_ID", "from-faust")
    settings = load_settings({**DISTRIBUTED, "CHAT4ALL_DATA_DIR": str(tmp_path), "CHAT4ALL_WORKER_GROUP": "g1"})

    app = create_faust_app(settings, build("worker", settings))
    consumer = worker_consumer(app)

    assert consumer._group_id == "g1"
    assert consumer._group_instance_id == f"{host_instance_base()}-0"
    assert consumer._session_timeout_ms == 6_000
    assert consumer._heartbeat_interval_ms == 1_000
    assert consumer._rebalance_timeout_ms == 30_000


async def test_an_instance_id_held_by_another_worker_on_this_host_stops_start_up(tmp_path) -> None:
    env = {**DISTRIBUTED, "CHAT4ALL_DATA_DIR": str(tmp_path), "CHAT4ALL_WORKER_INSTANCE_ID": "worker-a"}
    settings = load_settings(env)
    first = create_faust_app(settings, build("worker", settings))
    assert worker_consumer(first)._group_instance_id == "worker-a"

    with pytest.raises(SettingsError, match=r"^CHAT4ALL_WORKER_INSTANCE_ID=worker-a: another worker of group"):
        create_faust_app(settings, build("worker", settings))


def test_workers_on_one_host_take_distinct_slots_and_a_freed_slot_is_taken_again(tmp_path) -> None:
    base = host_instance_base()
    first = StaticMembership.claim(tmp_path, "g", None, bootstrap="127.0.0.1:1")
    second = StaticMembership.claim(tmp_path, "g", None, bootstrap="127.0.0.1:1")
    other_group = StaticMembership.claim(tmp_path, "h", None, bootstrap="127.0.0.1:1")
    assert (first.instance_id, second.instance_id, other_group.instance_id) == (f"{base}-0", f"{base}-1", f"{base}-0")

    first.release()
    again = StaticMembership.claim(tmp_path, "g", None, bootstrap="127.0.0.1:1")
    assert again.instance_id == f"{base}-0"
    for membership in (second, other_group, again):
        membership.release()


def test_a_killed_worker_frees_its_id_for_its_restart(tmp_path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from chat4all.adapters.kafka.membership import StaticMembership
                claim = StaticMembership.claim(Path({str(tmp_path)!r}), "g", None, bootstrap="127.0.0.1:1")
                print(claim.instance_id, flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == f"{host_instance_base()}-0"
        meanwhile = StaticMembership.claim(tmp_path, "g", None, bootstrap="127.0.0.1:1")
        assert meanwhile.instance_id == f"{host_instance_base()}-1"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    restarted = StaticMembership.claim(tmp_path, "g", None, bootstrap="127.0.0.1:1")
    assert restarted.instance_id == f"{host_instance_base()}-0"
    restarted.release()
    meanwhile.release()
