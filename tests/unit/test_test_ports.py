"""The ports tests and benchmarks start servers on stay out of the kernel's ephemeral range, where
an outgoing connection can take the port first, or a client retrying a stopped server's port can
connect to itself and hold it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from tests.ports import low_port, low_port_range

PICKS = 300


def test_picked_ports_are_below_the_ephemeral_range_and_free() -> None:
    ports = [low_port() for _ in range(PICKS)]
    assert max(ports) < 32768
    assert min(ports) >= 1024
    for port in ports[:50]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises when the port was not free
            sock.listen()


def test_no_port_is_handed_out_twice_nor_a_default_service_port() -> None:
    ports = [low_port() for _ in range(PICKS)]
    assert len(set(ports)) == PICKS  # a broker's port and its controller's must differ
    assert not set(ports) & {15432, 19092, 19093, 17070, 8000}


def test_the_range_ends_where_the_ephemeral_range_starts() -> None:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        ephemeral_from = int(ranges.read().split()[0])
    assert low_port_range().stop == min(ephemeral_from, 32768)


# A server or socket of a test or benchmark bound to port 0 gets an ephemeral port.
PORT_ZERO = re.compile(r"""\.bind\(\(\s*["'][^"']*["']\s*,\s*0\s*\)\)|TCPSite\([^)]*,\s*(port\s*=\s*)?0\s*[,)]""")
REPO = Path(__file__).resolve().parents[2]
EXPLAINED_THERE = {"benchmarks/ports.py", "tests/unit/test_test_ports.py"}


def test_no_test_or_benchmark_binds_port_zero() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("tests", "benchmarks")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.relative_to(REPO).as_posix() not in EXPLAINED_THERE
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PORT_ZERO.search(line)
    ]
    assert found == [], "pick the port with tests/ports.py low_port() instead"
