"""Anti-amplification accounting for peer addresses we have not validated (RFC 9000 §8, §9.3).

Until an address has answered one of our PATH_CHALLENGEs, we may send it at most three times
the bytes of authenticated packets it sent us. :class:`AmplificationLimits` keeps those two
counters per address; the table is bounded (oldest address forgotten first), so a peer that
sends from many addresses cannot grow it. Sans-I/O: no clock, no sockets.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["AMPLIFICATION_FACTOR", "MAX_TRACKED_ADDRESSES", "AmplificationLimits"]

AMPLIFICATION_FACTOR: Final = 3
MAX_TRACKED_ADDRESSES: Final = 16
"""Unvalidated addresses tracked at once; a forgotten one starts again at zero budget."""


class AmplificationLimits:
    """Bytes received from and sent to each unvalidated address."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        # addr -> [bytes received, bytes sent]; insertion order = age.
        self._counts: dict[Any, list[int]] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def on_receive(self, addr: Any, size: int) -> None:
        """``addr`` sent us an authenticated packet of ``size`` bytes."""
        entry = self._counts.get(addr)
        if entry is None:
            if len(self._counts) >= MAX_TRACKED_ADDRESSES:
                del self._counts[next(iter(self._counts))]
            entry = self._counts[addr] = [0, 0]
        entry[0] += size

    def budget(self, addr: Any) -> int:
        """Bytes we may still send to ``addr``."""
        entry = self._counts.get(addr)
        if entry is None:
            return 0
        return max(0, AMPLIFICATION_FACTOR * entry[0] - entry[1])

    def on_send(self, addr: Any, size: int) -> None:
        entry = self._counts.get(addr)
        if entry is not None:
            entry[1] += size

    def forget(self, addr: Any) -> None:
        """``addr`` is validated (or no longer of interest)."""
        self._counts.pop(addr, None)
