"""Per-path state of the native engine and the path events it emits (multipath, wire doc §3.3).

A *path* is a multipath PathId with its own 1-RTT packet-number space, loss recovery, peer
connection ID and network address. Path 0 is the handshake path; the client opens more (iroh:
after a NAT traversal probe succeeds) and the server accepts them. Everything here is sans-I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

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
