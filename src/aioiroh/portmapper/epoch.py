"""Server epoch checks: notice that a NAT-PMP / PCP gateway lost its mappings (rebooted)."""

from __future__ import annotations

__all__ = ["EpochTracker"]


class EpochTracker:
    """Compares the gateway's seconds-since-start with our own clock (RFC 6887 §8.5).

    The gateway's epoch must advance roughly as our clock does; if it goes backwards or
    drifts by more than the RFC's tolerance, its state was lost and every mapping must be
    re-created. NAT-PMP (RFC 6886 §3.6) has a looser form of the same rule; the PCP rule is
    used for both.
    """

    def __init__(self) -> None:
        self._prev: tuple[int, float] | None = None

    def reset(self) -> None:
        self._prev = None

    def observe(self, server_epoch: int, now: float) -> bool:
        """Record an epoch seen at client time ``now``; True when the gateway lost state."""
        prev, self._prev = self._prev, (server_epoch, now)
        if prev is None:
            return False
        prev_server, prev_client = prev
        if server_epoch < prev_server - 1:
            return True
        client_delta = now - prev_client
        server_delta = server_epoch - prev_server
        return (
            client_delta + 2 < server_delta - server_delta / 16
            or server_delta + 2 < client_delta - client_delta / 16
        )
