"""Token bucket fed ``now`` (sans-I/O): used by the relay server per client, and by others.

The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second. Taking more
than is available is allowed (the bucket goes into debt) and :meth:`TokenBucket.take` returns how
long the caller should wait before proceeding, which is how a reader applies back-pressure
instead of dropping.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Rate limiter: ``rate`` tokens/s, at most ``burst`` saved up."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, *, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def available(self, now: float) -> float:
        """Tokens that could be taken right now without waiting."""
        self._refill(now)
        return max(self._tokens, 0.0)

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` tokens; returns the seconds to wait until the debt is repaid (0 = go)."""
        self._refill(now)
        self._tokens -= amount
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate
