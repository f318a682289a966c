"""Ports for the servers tests and benchmarks start, picked below the kernel's ephemeral range.

A port from `bind(("127.0.0.1", 0))` lies in the ephemeral range (32768-60999 on Linux), the
source ports of outgoing connections. Between the pick and the server's bind, an outgoing
connection can take the port; and while the server is down (not started yet, or restarted), a
client retrying a connection to it can be handed that very port as its source port, connect to
itself (TCP simultaneous open) and hold the port. Below the ephemeral range neither can happen,
which is also where the project's default ports live.

This module is the one place that picks such ports: the tests import it through tests/ports.py;
it lives here so that the benchmarks run without the tests package.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOW_PORTS_FROM = 20000  # above the default service ports, so a pick never shadows one
EPHEMERAL_FROM_DEFAULT = 32768
# The default ports of scripts/services.sh (PostgreSQL, Kafka, its controller, S3) and of `chat4all serve`.
SERVICE_PORTS = frozenset({15432, 19092, 19093, 17070, 8000})
ATTEMPTS = 200

# Ports handed out by this process: two picks in a row (a broker's two ports) must differ even
# though nothing listens on the first one yet.
_handed_out: set[int] = set()


def ephemeral_ports_from() -> int:
    """The first port of the kernel's ephemeral range (source ports of outgoing connections)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_FROM_DEFAULT


def low_port_range() -> range:
    """Where `low_port` picks from: 20000 up to the ephemeral range (or 32767, if it starts higher)."""
    high = min(ephemeral_ports_from(), EPHEMERAL_FROM_DEFAULT)
    low = LOW_PORTS_FROM if high - LOW_PORTS_FROM >= 1000 else 1024
    return range(low, high)


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def low_port() -> int:
    """A free port on 127.0.0.1 below the ephemeral range, never one handed out before by this
    process nor a default service port: for a server a test or benchmark starts (and may restart
    on the same port), or for a port on which nothing must answer."""
    candidates = low_port_range()
    for _ in range(ATTEMPTS):
        port = random.choice(candidates)
        if port in _handed_out or port in SERVICE_PORTS:
            continue
        if bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")
