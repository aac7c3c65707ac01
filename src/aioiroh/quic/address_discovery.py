"""QUIC Address Discovery (QAD) send/receive state (wire doc §3.5). Sans-I/O.

The reporting side (a relay's QAD service, or any peer whose role allows sending) tells the
other side the source address it observes for each path, numbering reports with one increasing
sequence per connection, and reports again only when that path's observed address changes. The
receiving side keeps the newest report by sequence number; reordered older reports are ignored.
"""

from __future__ import annotations

from typing import Final

from aioiroh.quic.frames import ObservedAddressFrame
from aioiroh.quic.nat_traversal import Addr, canonical_addr

__all__ = [
    "QAD_ROLE_BOTH",
    "QAD_ROLE_RECEIVE",
    "QAD_ROLE_SEND",
    "AddressDiscovery",
]

QAD_ROLE_SEND: Final = 0
QAD_ROLE_RECEIVE: Final = 1
QAD_ROLE_BOTH: Final = 2
# One remembered observation per path; paths are bounded by multipath (u32 ids) but a
# connection only keeps a handful alive, so cap the map anyway.
MAX_TRACKED_PATHS: Final = 64


class AddressDiscovery:
    """Per-connection QAD state for whichever directions both sides' roles allow."""

    def __init__(self, *, local_role: int, peer_role: int) -> None:
        """Roles are the QAD TP values: 0 send only, 1 receive only, 2 both."""
        self.sends = local_role in (QAD_ROLE_SEND, QAD_ROLE_BOTH) and peer_role in (
            QAD_ROLE_RECEIVE,
            QAD_ROLE_BOTH,
        )
        """Whether we send OBSERVED_ADDRESS reports."""
        self.receives = local_role in (QAD_ROLE_RECEIVE, QAD_ROLE_BOTH) and peer_role in (
            QAD_ROLE_SEND,
            QAD_ROLE_BOTH,
        )
        """Whether we accept reports."""
        self._next_sequence = 0
        self._reported: dict[int, Addr] = {}
        self._latest_sequence: int | None = None
        self.observed_address: Addr | None = None
        """Our own address as the peer last reported it."""
        self.dropped_reports = 0
        """Reports ignored because they were older than the newest seen."""

    def on_path_address(self, path_id: int, remote: Addr) -> ObservedAddressFrame | None:
        """The peer is seen at ``remote`` on ``path_id``: a report to send if that changed."""
        if not self.sends:
            return None
        remote = canonical_addr(remote)
        if self._reported.get(path_id) == remote:
            return None
        if path_id not in self._reported and len(self._reported) >= MAX_TRACKED_PATHS:
            # Forget the oldest-inserted path; it only costs a repeated report.
            del self._reported[next(iter(self._reported))]
        self._reported[path_id] = remote
        sequence = self._next_sequence
        self._next_sequence += 1
        return ObservedAddressFrame(sequence, remote[0], remote[1])

    def on_path_abandoned(self, path_id: int) -> None:
        """Forget what we reported for a closed path."""
        self._reported.pop(path_id, None)

    def on_observed_address(self, frame: ObservedAddressFrame) -> Addr | None:
        """Handle a received report; returns our new observed address if it changed."""
        if self._latest_sequence is not None and frame.sequence <= self._latest_sequence:
            self.dropped_reports += 1
            return None
        self._latest_sequence = frame.sequence
        addr = canonical_addr((frame.ip, frame.port))
        if addr == self.observed_address:
            return None
        self.observed_address = addr
        return addr
