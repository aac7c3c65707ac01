"""When to start a NAT traversal (holepunching) round: iroh's scheduling policy. Pure.

Mirrors ``remote_state.rs`` (wire doc §3.4): a round is wanted when a client connection is
added, when either side's candidate addresses change, and every 60 s unless some IP path already
has an RTT of at most 10 ms. Without new candidates, rounds are at least 5 s apart. If starting a
round fails with ``NotEnoughAddresses`` or a multipath error it is retried after 100 ms; if the
extension was not negotiated the schedule gives up for good.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Final, Literal, TypeAlias

__all__ = [
    "GOOD_ENOUGH_LATENCY",
    "HOLEPUNCH_ATTEMPTS_INTERVAL",
    "RETRY_AFTER_ERROR",
    "UPGRADE_INTERVAL",
    "HolepunchSchedule",
    "RoundError",
]

HOLEPUNCH_ATTEMPTS_INTERVAL: Final = 5.0
UPGRADE_INTERVAL: Final = 60.0
GOOD_ENOUGH_LATENCY: Final = 0.010
RETRY_AFTER_ERROR: Final = 0.100

RoundError: TypeAlias = Literal[
    "not_enough_addresses", "multipath", "not_negotiated", "too_many_addresses", "closed"
]
_RETRYABLE: Final = frozenset({"not_enough_addresses", "multipath"})


class HolepunchSchedule:
    """Decides when the next holepunching round starts for one remote.

    Feed it events (``on_*``) and ask :meth:`poll` at :meth:`next_deadline`; when it returns
    True, start a round and report the outcome with :meth:`round_started` or
    :meth:`round_failed`.
    """

    def __init__(self) -> None:
        """Start idle: nothing is scheduled until a connection is added."""
        self._wanted_at: float | None = None
        self._last_round_at: float | None = None
        self._last_local: frozenset[Hashable] = frozenset()
        self._last_remote: frozenset[Hashable] = frozenset()
        self._local: frozenset[Hashable] = frozenset()
        self._remote: frozenset[Hashable] = frozenset()
        self._next_upgrade_check: float | None = None
        self.gave_up = False
        """True once the peer turned out not to support NAT traversal."""

    def _want(self, at: float) -> None:
        if self.gave_up:
            return
        if self._wanted_at is None or at < self._wanted_at:
            self._wanted_at = at

    def on_connection_added(self, now: float) -> None:
        """A client-side connection to the remote exists: holepunch now, check every 60 s."""
        self._want(now)
        self._next_upgrade_check = now + UPGRADE_INTERVAL

    def on_candidates(
        self, now: float, *, local: Iterable[Hashable], remote: Iterable[Hashable]
    ) -> None:
        """Current local and remote candidate sets (addresses added or removed)."""
        self._local, self._remote = frozenset(local), frozenset(remote)
        if self._has_new_candidates():
            self._want(now)

    def on_upgrade_check(self, now: float, *, best_ip_rtt: float | None) -> None:
        """The periodic check: holepunch unless an IP path is already good enough."""
        self._next_upgrade_check = now + UPGRADE_INTERVAL
        if best_ip_rtt is None or best_ip_rtt > GOOD_ENOUGH_LATENCY:
            self._want(now)

    def _has_new_candidates(self) -> bool:
        if self._last_round_at is None:
            return True
        # Addresses may disappear; only additions call for a new round.
        return not (self._local <= self._last_local and self._remote <= self._last_remote)

    def next_deadline(self) -> float | None:
        """Earliest time :meth:`poll` or :meth:`on_upgrade_check` has something to do."""
        if self.gave_up:
            return None
        times = [t for t in (self._wanted_at, self._next_upgrade_check) if t is not None]
        return min(times) if times else None

    def upgrade_check_due(self, now: float) -> bool:
        """Whether the 60 s upgrade check should run now (then call :meth:`on_upgrade_check`)."""
        return (
            not self.gave_up
            and self._next_upgrade_check is not None
            and now >= self._next_upgrade_check
        )

    def poll(self, now: float) -> bool:
        """True if a round should be started now."""
        if self.gave_up or self._wanted_at is None or now < self._wanted_at:
            return False
        if not self._has_new_candidates() and self._last_round_at is not None:
            earliest = self._last_round_at + HOLEPUNCH_ATTEMPTS_INTERVAL
            if now < earliest:
                self._wanted_at = earliest  # rate limited: try again then
                return False
        self._wanted_at = None
        return True

    def round_started(self, now: float) -> None:
        """A round was started with the current candidate sets."""
        self._last_round_at = now
        self._last_local, self._last_remote = self._local, self._remote

    def round_failed(self, now: float, error: RoundError) -> None:
        """Starting a round failed: retry soon, or give up if the extension is missing."""
        if error in _RETRYABLE:
            self._want(now + RETRY_AFTER_ERROR)
        elif error == "not_negotiated":
            self.gave_up = True
            self._wanted_at = None
            self._next_upgrade_check = None
