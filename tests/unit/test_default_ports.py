"""Every default port of the servers `scripts/services.sh` runs, and of the deployment file that
points at them, lies below Linux's ephemeral port range (32768-60999).

A client that keeps reconnecting to a stopped server on a port of that range can be handed that
port as its own source port, connect to itself and hold it: the server then cannot listen there
again when it restarts.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EPHEMERAL_FROM = 32768
PORT_VARIABLES = ("CHAT4ALL_PG_PORT", "CHAT4ALL_KAFKA_PORT", "CHAT4ALL_KAFKA_CONTROLLER_PORT", "CHAT4ALL_S3_PORT")
HOST_PORT = re.compile(r"127\.0\.0\.1:(\d+)")


def test_services_script_defaults_are_below_the_ephemeral_range():
    script = (REPO / "scripts" / "services.sh").read_text()
    defaults = dict(re.findall(r'"\$\{(CHAT4ALL_\w+_PORT):-(\d+)\}"', script))
    assert sorted(defaults) == sorted(PORT_VARIABLES)
    assert {name: int(port) for name, port in defaults.items() if int(port) >= EPHEMERAL_FROM} == {}


def test_the_test_environment_and_the_deployment_file_use_ports_below_the_ephemeral_range():
    env = {key: value for key, value in os.environ.items() if key not in PORT_VARIABLES}
    printed = subprocess.run(
        ["bash", str(REPO / "scripts" / "services.sh"), "env"], env=env, capture_output=True, text=True, check=True
    ).stdout
    deployment = (REPO / "deploy" / "distributed.env").read_text()
    for source, text in (("services.sh env", printed), ("deploy/distributed.env", deployment)):
        ports = [int(port) for port in HOST_PORT.findall(text)]
        assert len(ports) == 3, f"{source}: expected the PostgreSQL, Kafka and S3 addresses in\n{text}"
        assert all(port < EPHEMERAL_FROM for port in ports), f"{source}: {ports}"
