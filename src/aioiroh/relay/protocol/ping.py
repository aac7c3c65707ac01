"""Sans-I/O ping bookkeeping for a relay connection (either side).

One ping is outstanding at a time. Its deadline is three times the last measured round trip,
clamped to [0.5 s, ``max_timeout``]; before any measurement it is ``max_timeout`` (5 s by
default, like iroh's ``ping_tracker.rs``). The driver sends the returned :class:`Ping`, feeds
pongs to :meth:`PingTracker.pong_received`, and treats ``now >= deadline`` as a dead connection.
"""

from __future__ import annotations

from typing import Final

from .frames import Ping

__all__ = ["DEFAULT_PING_TIMEOUT", "MIN_PING_TIMEOUT", "PingTracker"]

DEFAULT_PING_TIMEOUT: Final = 5.0
MIN_PING_TIMEOUT: Final = 0.5
_RTT_FACTOR: Final = 3


class PingTracker:
    """Tracks the outstanding ping, its deadline and the last round-trip time (seconds)."""

    __slots__ = ("_data", "_deadline", "_sent_at", "max_timeout", "rtt")

    def __init__(self, max_timeout: float = DEFAULT_PING_TIMEOUT) -> None:
        self.max_timeout = max_timeout
        #: The last measured round-trip time, or None before the first pong.
        self.rtt: float | None = None
        self._data: bytes | None = None
        self._deadline: float | None = None
        self._sent_at = 0.0

    @property
    def timeout(self) -> float:
        """How long the next ping may go unanswered."""
        if self.rtt is None:
            return self.max_timeout
        return min(max(self.rtt * _RTT_FACTOR, MIN_PING_TIMEOUT), self.max_timeout)

    @property
    def deadline(self) -> float | None:
        """When the outstanding ping times out, or None if no ping is outstanding."""
        return self._deadline

    @property
    def outstanding(self) -> bool:
        """True while a ping awaits its pong."""
        return self._data is not None

    def new_ping(self, now: float, data: bytes) -> Ping:
        """Start a ping with the 8 caller-supplied random bytes ``data``; replaces any older."""
        ping = Ping(bytes(data))
        self._deadline = now + self.timeout
        self._data = ping.data
        self._sent_at = now
        return ping

    def pong_received(self, data: bytes, now: float) -> bool:
        """Record a pong; True if it answered the outstanding ping (stale pongs are ignored)."""
        if self._data is None or bytes(data) != self._data:
            return False
        self.rtt = max(now - self._sent_at, 0.0)
        self._data = None
        self._deadline = None
        return True

    def timed_out(self, now: float) -> bool:
        """True if a ping is outstanding and its deadline has passed."""
        return self._deadline is not None and now >= self._deadline
