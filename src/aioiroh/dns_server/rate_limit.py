"""Per-client token buckets for pkarr PUTs; pure, fed ``now``."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

__all__ = ["RateLimiter", "ResponseRateLimiter", "source_prefix"]


class RateLimiter:
    """Token bucket per key (client IP) with a bounded number of tracked keys.

    ``rate`` tokens per second refill each bucket up to ``burst``. When more than
    ``max_keys`` clients are tracked, the least recently seen is forgotten (it starts over
    with a full bucket, which errs on the side of letting traffic through).
    """

    __slots__ = ("_buckets", "burst", "max_keys", "rate")

    def __init__(self, rate: float, burst: int, *, max_keys: int) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate, burst and max_keys must be positive")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        """Take one token for ``key`` at time ``now`` (seconds); False if none is left."""
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)


def source_prefix(ip: str, *, v4_bits: int = 24, v6_bits: int = 56) -> str:
    """The network ``ip`` belongs to, as RRL buckets clients (one bucket per /24 or /56)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = v4_bits if addr.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


class ResponseRateLimiter:
    """DNS response-rate limiting per source prefix, the BIND / Knot RRL idea.

    Each prefix may get ``rate`` responses per second (bucket of ``burst``). Over the limit,
    every ``slip``-th query gets a truncated (TC) reply, so a real resolver retries over TCP,
    and the rest are dropped: a spoofed victim receives at most a trickle of small replies.
    """

    __slots__ = ("_buckets", "_skipped", "slip")

    def __init__(self, rate: float, burst: int, *, slip: int = 2, max_prefixes: int) -> None:
        if slip < 0:
            raise ValueError("slip must be >= 0")
        self._buckets = RateLimiter(rate, burst, max_keys=max_prefixes)
        self._skipped: OrderedDict[str, int] = OrderedDict()
        self.slip = slip

    def check(self, ip: str, now: float) -> str:
        """``"answer"``, ``"slip"`` (send a truncated reply) or ``"drop"`` for a query."""
        prefix = source_prefix(ip)
        if self._buckets.allow(prefix, now):
            return "answer"
        if self.slip == 0:
            return "drop"
        count = self._skipped.pop(prefix, 0) + 1
        self._skipped[prefix] = count
        while len(self._skipped) > self._buckets.max_keys:
            self._skipped.popitem(last=False)
        return "slip" if count % self.slip == 0 else "drop"
