"""iroh's path policy for one multipath connection: which path carries data, when to holepunch.

Sans-I/O: the driver calls :meth:`PathManager.poll` with the time after each flush and at
:meth:`PathManager.next_deadline`. It reads the engine's paths, and through the engine's API

- marks the best path AVAILABLE and every other one BACKUP (:class:`BiasedRttPathSelector`:
  IP paths first, relay as the backup tier, 5 ms anti-flap), which makes both sides send data on
  it (wire doc §4.5);
- on the client, closes redundant IP paths (keeping the selected one and the relay paths);
- on the client, starts NAT traversal rounds on iroh's schedule (:class:`HolepunchSchedule`: on
  connect, when candidates change, every 60 s unless an IP path is under 10 ms, at most one
  round per 5 s without new candidates).

Path events (opened, selected, closed) are handed to ``on_event`` for ``Connection.path_events``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Literal, Protocol

from ..quic.nat_traversal import NatTraversalError, NotEnoughAddresses
from ..quic.paths import PathSnapshot
from .holepunch import HolepunchSchedule
from .path_selector import BiasedRttPathSelector, PathCandidate, PathKind

__all__ = ["MultipathEngine", "PathEvent", "PathManager", "path_kind"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PathEvent:
    """A change of a connection's paths (like Rust's ``PathEvent``)."""

    kind: Literal["opened", "selected", "closed"]
    path_id: int
    remote: Any


class MultipathEngine(Protocol):
    """The engine calls the manager uses (implemented by the native ``IrohConnection``)."""

    @property
    def is_client(self) -> bool: ...
    @property
    def nat_traversal_negotiated(self) -> bool: ...
    def path_snapshots(self) -> list[PathSnapshot]: ...
    def set_path_status(self, path_id: int, available: bool) -> None: ...
    def close_path(self, path_id: int, now: float, error_code: int = 0) -> bool: ...
    def add_nat_address(self, host: str, port: int) -> None: ...
    def remove_nat_address(self, host: str, port: int) -> None: ...
    def nat_remote_addresses(self) -> list[Any]: ...
    def initiate_nat_traversal_round(self, now: float) -> None: ...


def path_kind(remote: Any) -> PathKind:
    """Selector tier of an address: relay paths have a ``url``; IP paths a ``host``."""
    if hasattr(remote, "url"):
        return "relay"
    host = getattr(remote, "host", None)
    if host is None and isinstance(remote, tuple) and remote:
        host = remote[0]
    try:
        ip = ip_address(host) if isinstance(host, str) else None
    except ValueError:
        ip = None
    if ip is None:
        return "custom"
    return "ip6" if ip.version == 6 else "ip4"


class PathManager:
    """Applies iroh's path selection and holepunch scheduling to one engine."""

    def __init__(
        self,
        engine: MultipathEngine,
        *,
        local_candidates: Callable[[], list[tuple[str, int]]],
        on_event: Callable[[PathEvent], None] = lambda ev: None,
    ) -> None:
        self.engine = engine
        self.local_candidates = local_candidates
        self.on_event = on_event
        self.selector = BiasedRttPathSelector()
        self.schedule = HolepunchSchedule()
        self.selected: int | None = None
        self._started = False
        self._known: dict[int, Any] = {}
        self._local: list[tuple[str, int]] = []
        self._lost_direct = False

    def start(self, now: float) -> None:
        """The handshake is done: register our candidates and (client) schedule a round."""
        if self._started:
            return
        self._started = True
        self.refresh_candidates(now)
        if self.engine.is_client:
            self.schedule.on_connection_added(now)

    @property
    def started(self) -> bool:
        """True once :meth:`start` ran (the driver starts it right after the handshake)."""
        return self._started

    def refresh_candidates(self, now: float) -> None:
        """Give the engine our current local candidate addresses (call on address changes)."""
        local = self.local_candidates()
        # Withdraw what is gone (an old network's address, a stale NAT mapping).
        for host, port in set(self._local) - set(local):
            self.engine.remove_nat_address(host, port)
        for host, port in local:
            self.engine.add_nat_address(host, port)
        self._local = local

    def next_deadline(self) -> float | None:
        """When :meth:`poll` has timed work (holepunch rounds)."""
        if not self._started or not self.engine.is_client:
            return None
        return self.schedule.next_deadline()

    def poll(self, now: float) -> None:
        """Apply the policy to the engine's current paths."""
        if not self._started:
            return
        engine = self.engine
        snaps = engine.path_snapshots()
        self._report_changes(snaps)
        live = [s for s in snaps if s.validated and not s.abandoned]
        candidates = [PathCandidate(s.path_id, path_kind(s.remote), s.rtt) for s in live]
        current = self.selected if any(s.path_id == self.selected for s in live) else None
        chosen = self.selector.select(candidates, current)
        if chosen is None and live:
            chosen = live[0].path_id
        if chosen is not None and chosen != self.selected:
            self.selected = int(chosen)  # type: ignore[call-overload]
            remote = next(s.remote for s in live if s.path_id == chosen)
            logger.debug("path %s selected: %s", self.selected, remote)
            self.on_event(PathEvent("selected", self.selected, remote))
        if self.selected is not None:
            for s in live:
                want = s.path_id == self.selected
                if s.available != want:
                    engine.set_path_status(s.path_id, want)
        if engine.is_client:
            self._close_redundant(live, now)
            self._holepunch(live, now)

    def _report_changes(self, snaps: list[PathSnapshot]) -> None:
        for s in snaps:
            if s.validated and not s.abandoned and s.path_id not in self._known:
                self._known[s.path_id] = s.remote
                logger.debug("path %s opened: %s", s.path_id, s.remote)
                self.on_event(PathEvent("opened", s.path_id, s.remote))
            elif s.abandoned and s.path_id in self._known:
                del self._known[s.path_id]
                logger.debug("path %s closed: %s", s.path_id, s.remote)
                self.on_event(PathEvent("closed", s.path_id, s.remote))
                if self.engine.is_client and path_kind(s.remote) != "relay":
                    # A direct path died: look for one again (still at most one round per 5 s).
                    self._lost_direct = True
        gone = set(self._known) - {s.path_id for s in snaps}
        for path_id in gone:
            self.on_event(PathEvent("closed", path_id, self._known.pop(path_id)))

    def _close_redundant(self, live: list[PathSnapshot], now: float) -> None:
        """Keep one IP path (the selected one) plus relay paths; abandon the other IP paths."""
        selected = next((s for s in live if s.path_id == self.selected), None)
        if selected is None or path_kind(selected.remote) == "relay":
            return
        for s in live:
            if s.path_id != selected.path_id and path_kind(s.remote) in ("ip4", "ip6"):
                self.engine.close_path(s.path_id, now)

    def _holepunch(self, live: list[PathSnapshot], now: float) -> None:
        engine = self.engine
        if not engine.nat_traversal_negotiated:
            return
        schedule = self.schedule
        schedule.on_candidates(now, local=self._local, remote=engine.nat_remote_addresses())
        if self._lost_direct:
            self._lost_direct = False
            schedule.on_connection_added(now)
        if schedule.upgrade_check_due(now):
            ip_rtts = [
                s.rtt for s in live if path_kind(s.remote) in ("ip4", "ip6") and s.rtt is not None
            ]
            schedule.on_upgrade_check(now, best_ip_rtt=min(ip_rtts) if ip_rtts else None)
        if not schedule.poll(now):
            return
        try:
            engine.initiate_nat_traversal_round(now)
        except NotEnoughAddresses:
            schedule.round_failed(now, "not_enough_addresses")
        except NatTraversalError as exc:
            logger.debug("no NAT traversal round: %s", exc)
            schedule.round_failed(now, "not_negotiated")
        else:
            logger.debug(
                "NAT traversal round: local %s, remote %s",
                self._local,
                engine.nat_remote_addresses(),
            )
            schedule.round_started(now)
