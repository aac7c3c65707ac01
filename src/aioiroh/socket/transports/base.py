"""Types shared by the socket's transports.

Only what the relay transport needs today; the IP transport and the ``Transport``
protocol join here later.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Transmit"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Transmit:
    """One outgoing UDP payload as QUIC hands it over, possibly several GSO segments."""

    contents: bytes
    """The datagram, or several datagrams back to back when ``segment_size`` is set."""
    ecn: int = 0
    """ECN codepoint (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE)."""
    segment_size: int | None = None
    """Size of each datagram in ``contents`` (the last may be shorter); None means one datagram."""

    def segments(self) -> list[bytes]:
        """The individual datagrams in ``contents``."""
        size = self.segment_size
        if not size or size >= len(self.contents):
            return [self.contents]
        data = self.contents
        return [data[i : i + size] for i in range(0, len(data), size)]
