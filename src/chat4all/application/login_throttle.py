"""Which counters a login attempt is throttled by, and how many failures each may hold."""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import timedelta

import attrs

from chat4all.domain.users import is_valid_username

MAX_KEY_PART = 100
# The address of a client whose peer address the server does not know (no TCP peer, e.g. a Unix
# socket): all such clients share one address counter.
UNKNOWN_ADDRESS = "unknown"


@attrs.frozen
class LoginThrottle:
    """How many failed logins each counter may hold within the sliding window.

    - per (username, client address): the low limit that stops one address guessing one password.
      Failures from one address never block the same username from another address, so nobody
      can lock a user out by failing from their own address.
    - per client address, across usernames: stops one address trying many usernames.
    - per username, across addresses: a high ceiling against guessing spread over many addresses.
      It can still lock a user out, but only from more than `max_failures_per_user /
      max_failures_per_user_and_address` addresses (IPv6: /64 blocks) within one window.
    """

    max_failures_per_user_and_address: int = 5
    max_failures_per_address: int = 20
    max_failures_per_user: int = 100
    window: timedelta = timedelta(minutes=15)

    def limits(self, username: str, client_address: str | None) -> list[tuple[str, int]]:
        """The counters of one attempt with their limits: the (username, address) pair first,
        then the address, then the username. Every attempt locks its counters in this one order,
        so concurrent logins wait for one another instead of deadlocking."""
        address = address_key(client_address or UNKNOWN_ADDRESS)
        user = user_key(username)
        return [
            (pair_key(user, address), self.max_failures_per_user_and_address),
            (address, self.max_failures_per_address),
            (user, self.max_failures_per_user),
        ]


def address_key(address: str) -> str:
    """The throttling key of a client address. IPv6 clients are counted per /64, the block a single
    subscriber usually holds, so rotating through one's own addresses gains nothing."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "addr:" + address[:MAX_KEY_PART]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return "addr:" + str(parsed.ipv4_mapped)
        return "addr:" + str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return "addr:" + str(parsed)


def user_key(username: str) -> str:
    """Valid usernames are kept as they are; anything else (it can belong to no one) is escaped to
    printable ASCII, so no byte a client sends ends up raw in the database."""
    if is_valid_username(username):
        return "user:" + username
    return "user:" + username[:MAX_KEY_PART].encode("unicode_escape").decode("ascii")[:MAX_KEY_PART]


def pair_key(user: str, address: str) -> str:
    """The key of a (username, address) pair, from their keys. Hashed: both parts together may be
    longer than a key can be."""
    return "pair:" + hashlib.sha256(f"{user}\n{address}".encode()).hexdigest()
