"""Exponential backoff with jitter, as a pure function of the attempt number.

iroh reconnects relay connections with ``backon``'s exponential builder: a 10 ms first
delay, doubling each attempt, capped at 16 s, with jitter (wire doc §5.6, iroh
``socket/transports/relay/actor.rs`` ``build_backoff``). Jitter keeps many clients that
lost the same relay at once from reconnecting in lockstep.

The randomness comes in as a parameter so tests can pin it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_BACKOFF", "Backoff", "next_delay"]

# First reconnect delay: short, because most drops are transient (relay restart, NAT rebind).
MIN_DELAY: Final = 0.010
# Ceiling: a relay that is down for long is retried at most every 16 s.
MAX_DELAY: Final = 16.0
FACTOR: Final = 2.0
# Beyond this exponent the delay is capped anyway; keeps 2**attempt from growing unbounded.
_MAX_EXPONENT: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Parameters of an exponential backoff schedule."""

    min_delay: float = MIN_DELAY
    """Delay before the first retry, in seconds (before jitter)."""
    max_delay: float = MAX_DELAY
    """Upper bound of any delay, in seconds (jitter included)."""
    factor: float = FACTOR
    """Growth factor per attempt."""
    jitter: bool = True
    """Add up to one extra base delay, drawn from ``rng``."""

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        """Delay in seconds before retry number ``attempt`` (0-based).

        ``rng`` returns a float in ``[0, 1)`` (e.g. ``random.random``).
        """
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        base = min(self.min_delay * self.factor**exponent, self.max_delay)
        if self.jitter:
            base += base * rng()
        return min(base, self.max_delay)


DEFAULT_BACKOFF: Final = Backoff()


def next_delay(attempt: int, rng: Callable[[], float], backoff: Backoff = DEFAULT_BACKOFF) -> float:
    """Delay before retry ``attempt`` (0-based) with iroh's relay defaults (10 ms … 16 s)."""
    return backoff.delay(attempt, rng)
