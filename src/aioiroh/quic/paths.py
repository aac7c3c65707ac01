"""Per-path state of the native engine and the path events it emits (multipath, wire doc §3.3).

A *path* is a multipath PathId with its own 1-RTT packet-number space, loss recovery, peer
connection ID and network address. Path 0 is the handshake path; the client opens more (iroh:
after a NAT traversal probe succeeds) and the server accepts them. Everything here is sans-I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from aioquic.quic.congestion.base import create_congestion_control
from aioquic.quic.events import QuicEvent
from aioquic.quic.recovery import QuicPacketRecovery, QuicPacketSpace

__all__ = [
    "PathAbandoned",
    "PathOpened",
    "PathSnapshot",
    "PathState",
    "PathStatusChanged",
]

PATH_IDLE_TIMEOUT: Final = 15.0
"""iroh's per-path idle timeout (PATH_MAX_IDLE_TIMEOUT)."""
PATH_KEEP_ALIVE: Final = 5.0
"""iroh's per-path keep-alive (HEARTBEAT_INTERVAL): a PING on every open path this often."""
MAX_CHALLENGE_TRIES: Final = 8
"""PATH_CHALLENGEs sent on a new path before we give it up."""
MIN_CHALLENGE_INTERVAL: Final = 0.05
"""Floor of the PATH_CHALLENGE retry interval (it follows the path's PTO otherwise)."""
PENDING_OPEN_RETRY: Final = 0.333
"""How often a blocked path open is retried (iroh's pending-path retry interval)."""
PENDING_OPEN_LIFETIME: Final = 15.0
"""A blocked open is given up after this long (a NAT traversal round finds the address again)."""
MAX_PENDING_OPENS: Final = 8
"""Blocked path opens kept for retry at once (one per candidate address)."""
MIN_VALIDATION_DATAGRAM: Final = 1200
"""A PATH_CHALLENGE datagram is padded to this when the 3x budget allows (RFC 9000 §8.2.1)."""


@dataclass
class PathOpened(QuicEvent):
    """A path was validated and may now carry traffic."""

    path_id: int
    remote: Any


@dataclass
class PathAbandoned(QuicEvent):
    """A path was abandoned (by either side, or because it went idle or failed validation)."""

    path_id: int
    remote: Any
    error_code: int


@dataclass
class PathStatusChanged(QuicEvent):
    """Our status of a path changed (AVAILABLE = selected for data, else BACKUP)."""

    path_id: int
    available: bool


@dataclass(frozen=True, slots=True)
class PathSnapshot:
    """What the engine knows about one path (for ``Connection.paths()`` and path selection)."""

    path_id: int
    remote: Any
    validated: bool
    abandoned: bool
    available: bool
    """Our local status: True = AVAILABLE, False = BACKUP."""
    carries_data: bool
    """Whether this is the path the engine currently sends data on."""
    rtt: float | None
    datagrams_sent: int
    datagrams_recv: int
    bytes_sent: int
    bytes_recv: int


class PathState:
    """Mutable state of one PathId."""

    __slots__ = (
        "abandon_pending",
        "abandoned",
        "addr",
        "available",
        "bytes_recv",
        "bytes_sent",
        "challenge",
        "challenge_at",
        "challenge_tries",
        "datagrams_recv",
        "datagrams_sent",
        "drain_at",
        "idle_at",
        "keepalive_at",
        "migrate_addr",
        "migrate_at",
        "migrate_challenge",
        "migrate_tries",
        "path_id",
        "peer_cid",
        "peer_cid_seq",
        "ping_pending",
        "pn",
        "probe_pending",
        "recovery",
        "responses",
        "space",
        "status_seq",
        "unacked_eliciting",
        "validated",
    )

    def __init__(
        self,
        path_id: int,
        addr: Any,
        space: QuicPacketSpace,
        recovery: QuicPacketRecovery,
        *,
        validated: bool,
        available: bool = True,
    ) -> None:
        self.path_id = path_id
        self.addr = addr
        self.space = space
        self.recovery = recovery
        self.pn = 0
        self.peer_cid = b""
        self.peer_cid_seq = -1
        self.validated = validated
        self.available = available
        self.status_seq = 0
        self.abandoned = False
        self.abandon_pending: int | None = None
        self.drain_at: float | None = None
        self.idle_at: float | None = None
        self.keepalive_at: float | None = None
        self.challenge: bytes | None = None
        self.challenge_at: float | None = None
        self.challenge_tries = 0
        self.responses: list[bytes] = []
        # A new peer address seen under this path (server), validated before the path moves.
        self.migrate_addr: Any = None
        self.migrate_challenge: bytes | None = None
        self.migrate_at: float | None = None
        self.migrate_tries = 0
        self.ping_pending = False
        self.probe_pending = False
        self.unacked_eliciting = 0
        self.datagrams_sent = 0
        self.datagrams_recv = 0
        self.bytes_sent = 0
        self.bytes_recv = 0

    @property
    def rtt(self) -> float | None:
        """Smoothed RTT once measured (aioquic keeps it in private fields)."""
        rec: Any = self.recovery
        return float(rec._rtt_smoothed) if rec._rtt_initialized else None

    def amplification_budget(self) -> int | None:
        """Bytes we may still send before the path is validated (3x rule), None if unlimited."""
        if self.validated:
            return None
        return max(0, 3 * self.bytes_recv - self.bytes_sent)


def reset_congestion(recovery: QuicPacketRecovery, algorithm: str, max_datagram_size: int) -> None:
    """Forget a path's congestion window and RTT: its peer moved to another IP (RFC 9000 §9.4).

    Bytes in flight carry over so their ACKs or losses still balance. aioquic has no public
    reset; the private fields are the ones ``PathState.rtt`` already reads, and
    ``tests/quic/test_aioquic_compat.py`` checks they exist.
    """
    rec: Any = recovery
    in_flight = rec._cc.bytes_in_flight
    rec._cc = create_congestion_control(algorithm, max_datagram_size=max_datagram_size)
    rec._cc.bytes_in_flight = in_flight
    rec._rtt_initialized = False
    rec._rtt_latest = 0.0
    rec._rtt_min = math.inf
    rec._rtt_smoothed = 0.0
    rec._rtt_variance = 0.0
    rec._pto_count = 0
