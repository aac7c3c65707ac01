"""Which path carries a remote's traffic: iroh's biased-RTT policy (wire doc §4.5). Pure.

Paths are ranked by ``(tier, biased RTT)``. IP paths (and custom transports) are the primary
tier, relay paths the backup tier, so a relay is only chosen when no IP path works. IPv6 paths
get a 3 ms advantage. Within a tier the selection only moves to a path that is at least 5 ms
better, so two similar paths do not flap; moving between tiers happens at once. Paths without an
RTT sample yet, or marked unusable, are not candidates.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

__all__ = [
    "IPV6_RTT_ADVANTAGE",
    "RTT_SWITCHING_MIN",
    "BiasedRttPathSelector",
    "PathCandidate",
    "PathKind",
]

PathKind: TypeAlias = Literal["ip4", "ip6", "relay", "custom"]

IPV6_RTT_ADVANTAGE: Final = 0.003
RTT_SWITCHING_MIN: Final = 0.005
_PRIMARY: Final = 0
_BACKUP: Final = 1


@dataclass(frozen=True, slots=True)
class PathCandidate:
    """One path of a remote as the selector sees it."""

    path_key: Hashable
    """Caller's identifier of the path (e.g. path id or four-tuple)."""
    kind: PathKind
    """Transport kind; decides tier and bias."""
    rtt: float | None
    """Smoothed RTT in seconds, None before the first sample."""
    usable: bool = True
    """False for paths that are closing, unvalidated or otherwise not to be used."""


class BiasedRttPathSelector:
    """iroh's default path selector (``BiasedRttPathSelector``)."""

    def sort_key(self, candidate: PathCandidate) -> tuple[int, float]:
        """``(tier, biased rtt)``; smaller is better."""
        assert candidate.rtt is not None
        if candidate.kind == "relay":
            return _BACKUP, candidate.rtt
        if candidate.kind == "ip6":
            return _PRIMARY, candidate.rtt - IPV6_RTT_ADVANTAGE
        return _PRIMARY, candidate.rtt

    def select(
        self, candidates: Iterable[PathCandidate], current: Hashable | None
    ) -> Hashable | None:
        """Return the path to use: ``current`` if it should stay, else the better one."""
        best: PathCandidate | None = None
        best_key: tuple[int, float] | None = None
        current_key: tuple[int, float] | None = None
        for candidate in candidates:
            if not candidate.usable or candidate.rtt is None:
                continue
            key = self.sort_key(candidate)
            if candidate.path_key == current and (current_key is None or key < current_key):
                current_key = key
            if best_key is None or key < best_key:
                best, best_key = candidate, key
        if best is None or best_key is None:
            return current
        if current_key is None or current_key[0] != best_key[0]:
            return best.path_key
        # Compare with a tiny tolerance so "exactly 5 ms better" switches despite float error.
        if best_key[1] + RTT_SWITCHING_MIN <= current_key[1] + 1e-9:
            return best.path_key
        return current
