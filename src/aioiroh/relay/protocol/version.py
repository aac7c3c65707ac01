"""Relay protocol versions, WebSocket subprotocol names, paths and headers (wire doc §5.1-5.2).

A client offers every version it speaks in ``Sec-WebSocket-Protocol`` (``iroh-relay-v2,
iroh-relay-v1``); the relay answers with the highest one it also speaks. v1 carries the
``Health`` frame (11); v2 drops it and adds ``Status`` (13).
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "AUTH_TOKEN_QUERY_PARAM",
    "CLIENT_AUTH_HEADER",
    "PROBE_PATH",
    "RELAY_PATH",
    "SUBPROTOCOLS",
    "ProtocolVersion",
    "negotiate",
]

# The WebSocket endpoint; the client swaps whatever path the relay URL has for this one.
RELAY_PATH: Final = "/relay"
# HTTP latency probe; a Rust client never picks a home relay that does not answer it (§13).
PROBE_PATH: Final = "/ping"
# Header carrying the TLS-exporter based auth (saves the challenge round trip, §5.4).
CLIENT_AUTH_HEADER: Final = "x-iroh-relay-client-auth-v1"
# Browsers cannot set Authorization on a WebSocket, so the token may come as ``?token=``.
AUTH_TOKEN_QUERY_PARAM: Final = "token"


class ProtocolVersion(enum.StrEnum):
    """A relay protocol version; the value is its WebSocket subprotocol name."""

    V1 = "iroh-relay-v1"
    V2 = "iroh-relay-v2"

    @property
    def number(self) -> int:
        """The version as an integer, for ordering (v2 > v1)."""
        return _NUMBERS[self]

    @classmethod
    def from_subprotocol(cls, name: str) -> ProtocolVersion | None:
        """The version named ``name`` (surrounding whitespace ignored), or None if unknown."""
        try:
            return cls(name.strip())
        except ValueError:
            return None


_NUMBERS: Final = {ProtocolVersion.V1: 1, ProtocolVersion.V2: 2}

# Every version we speak, preferred first: what a client offers and a server accepts.
SUBPROTOCOLS: Final[tuple[str, ...]] = (ProtocolVersion.V2.value, ProtocolVersion.V1.value)


def negotiate(offered: str | list[str] | tuple[str, ...]) -> ProtocolVersion | None:
    """Pick the highest version in a ``Sec-WebSocket-Protocol`` offer, or None if none is known.

    ``offered`` is the raw header value (comma separated) or an already split list.
    """
    items = offered.split(",") if isinstance(offered, str) else offered
    best: ProtocolVersion | None = None
    for item in items:
        version = ProtocolVersion.from_subprotocol(item)
        if version is not None and (best is None or version.number > best.number):
            best = version
    return best
