"""Drives one QUIC engine: feeds datagrams in, sends what it produces, keeps its one timer.

On the dialing side the engine addresses a :class:`DialTarget`; until a path is chosen every
datagram goes to every candidate path (iroh dials all known addresses at once, wire doc §4.3),
and the first path the peer answers on becomes the selected one.

A multipath engine (the native one) sees real paths: the driver hands it the path each datagram
came on, sends to the path it names, and runs a :class:`PathManager` once the handshake is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aioquic.quic import events

from ..quic.paths import PathAbandoned, PathOpened, PathStatusChanged
from .hard_nat import DEFAULT_SOCKETS, BirthdayPunch, Probe, select_targets
from .path_manager import PathEvent, PathManager, path_kind
from .paths import DialTarget, IpPath, NetworkPath, RelayPath

RELAY_PATH_IDLE_TIMEOUT: Final = 30.0
"""iroh gives relay paths a longer idle timeout than direct ones (15 s)."""
NETWORK_CHANGE_GRACE: Final = 2.0
"""After our addresses change, IP paths silent for this long are closed (their local end is
gone), so a holepunch round can open a fresh path even to the same remote address."""
MAX_PATH_EVENT_QUEUE: Final = 256
"""Bound on unread path events per subscriber; the oldest are dropped beyond it."""
HARD_NAT_DELAY: Final = 2.0
"""The birthday hard-NAT attempt starts this long after the handshake if no direct path has
been validated by then (iroh's own rounds find easy paths within a few RTTs)."""

if TYPE_CHECKING:
    from ..quic.engine import QuicEngine
    from .socket import MagicSocket

logger = logging.getLogger(__name__)


class PathStats:
    """Per-path counters, reported by ``Connection.paths()``."""

    __slots__ = ("bytes_recv", "bytes_sent", "datagrams_recv", "datagrams_sent", "last_recv")

    def __init__(self) -> None:
        self.datagrams_sent = 0
        self.datagrams_recv = 0
        self.bytes_sent = 0
        self.bytes_recv = 0
        self.last_recv: float | None = None


class ConnectionDriver:
    """Glue between one engine, the magic socket and the application-side Connection."""

    def __init__(
        self,
        sock: MagicSocket,
        quic: QuicEngine,
        *,
        target: DialTarget | None = None,
        candidates: list[NetworkPath] | None = None,
        first_path: NetworkPath | None = None,
    ) -> None:
        self.socket = sock
        self.quic = quic
        self.loop = asyncio.get_running_loop()
        self.target = target
        self.candidates: list[NetworkPath] = list(candidates or [])
        self.selected: NetworkPath | None = first_path
        self.stats: dict[NetworkPath, PathStats] = {}
        self.cids: set[bytes] = set()
        self.on_event: Callable[[events.QuicEvent], None] = lambda ev: None
        self.on_flushed: Callable[[], None] = lambda: None
        self.handshake_complete = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_scheduled = False
        self._last_send = self.loop.time()
        self._keep_alive = getattr(getattr(quic, "settings", None), "keep_alive_interval", 5.0)
        self.closed = False
        self.path_idle_timeout: float | None = None
        """Override of the per-path idle timeout of direct paths (tests), None = iroh's."""
        self.manager: PathManager | None = None
        self.path_event_listeners: list[Callable[[PathEvent], None]] = []
        self._netchange_timer: asyncio.TimerHandle | None = None
        self.hard_nat: BirthdayPunch | None = None
        """The birthday hard-NAT attempt, once started (its counters stay for diagnostics)."""
        self._hard_nat_at: float | None = None
        self._hard_nat_done = False
        self.multipath = hasattr(quic, "path_snapshots")
        if self.multipath:
            engine: Any = quic
            engine.make_addr = IpPath
            engine.path_idle_timeout = self._path_idle_timeout
            self.manager = PathManager(
                engine, local_candidates=sock.candidate_addrs, on_event=self._on_path_event
            )

    def _start_manager(self) -> None:
        if self.closed or self.manager is None or self.quic.is_closing:
            return
        self.manager.start(self.loop.time())
        self.flush()

    def _path_idle_timeout(self, path: Any) -> float:
        if isinstance(path, RelayPath):
            return RELAY_PATH_IDLE_TIMEOUT
        return self.path_idle_timeout if self.path_idle_timeout is not None else 15.0

    def _on_path_event(self, event: PathEvent) -> None:
        if event.kind == "selected":
            self.selected = event.remote
        for listener in list(self.path_event_listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("path event listener failed")

    # -- inbound ---------------------------------------------------------------------------

    def receive(self, data: bytes, path: NetworkPath, now: float) -> None:
        st = self.stats.get(path)
        if st is None:
            st = self.stats[path] = PathStats()
        st.datagrams_recv += 1
        st.bytes_recv += len(data)
        st.last_recv = now
        if self.target is not None:
            if self.selected is None:
                # The first path the peer answers on wins; the rest stop getting copies.
                self.selected = path
            # A multipath engine adopts the answering path as path 0 (handshake migration).
            self.quic.receive_datagram(data, path if self.multipath else self.target, now)
        else:
            if not self.handshake_complete and path != self.selected:
                # A duplicate Initial over another transport (iroh dials relay and UDP at
                # once): answer on one path only.
                return
            self.quic.receive_datagram(data, path, now)

    # -- outbound --------------------------------------------------------------------------

    def schedule_flush(self) -> None:
        """Flush once at the next loop turn; many writes in one turn share one flush."""
        if not self._flush_scheduled and not self.closed:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self.closed:
            return
        quic = self.quic
        start_manager = False
        while (event := quic.next_event()) is not None:
            if isinstance(event, events.ConnectionIdIssued):
                self.cids.add(event.connection_id)
                self.socket.register_cid(event.connection_id, self)
            elif isinstance(event, events.ConnectionIdRetired):
                self.cids.discard(event.connection_id)
                self.socket.unregister_cid(event.connection_id)
            elif isinstance(event, events.HandshakeCompleted):
                self.handshake_complete = True
                start_manager = self.manager is not None
            elif isinstance(event, PathOpened | PathAbandoned | PathStatusChanged):
                continue  # the path manager reports path changes from the engine's state
            try:
                self.on_event(event)
            except Exception:  # an application bug must not kill the socket
                logger.exception("connection event handler failed")
        if start_manager:
            # Path management (our candidates, the first holepunch round, path events) starts
            # one loop turn later: the client's Finished leaves now without it, and the task
            # awaiting the handshake (woken by the event above) runs first.
            self.loop.call_soon(self._start_manager)
        now = self.loop.time()
        if self.manager is not None and not quic.is_closing:
            self.manager.poll(now)
            if self.socket.hard_nat and not self._hard_nat_done:
                self._hard_nat_poll(now)
        out = quic.datagrams_to_send(now)
        if out:
            self._last_send = now
            # Consecutive datagrams for one path go out together (one GSO sendmsg).
            run: list[bytes] = []
            run_addr: Any = None
            for data, addr in out:
                if run and addr != run_addr:
                    self._send_run(run, run_addr)
                    run = []
                run.append(data)
                run_addr = addr
            self._send_run(run, run_addr)
        self.on_flushed()
        if quic.is_terminated:
            self._terminate()
            return
        self._arm_timer()

    def _send_run(self, run: list[bytes], addr: Any) -> None:
        if len(run) == 1 or addr is self.target:
            for data in run:
                self._send(data, addr)
            return
        st = self.stats.get(addr)
        if st is None:
            st = self.stats[addr] = PathStats()
        st.datagrams_sent += len(run)
        st.bytes_sent += sum(map(len, run))
        self.socket.send_many(run, addr)

    def _send(self, data: bytes, addr: Any) -> None:
        if addr is self.target:
            if self.selected is not None:
                paths: list[NetworkPath] = [self.selected]
            else:
                paths = self.candidates
        else:
            paths = [addr]
        for path in paths:
            st = self.stats.get(path)
            if st is None:
                st = self.stats[path] = PathStats()
            st.datagrams_sent += 1
            st.bytes_sent += len(data)
            self.socket.send(data, path)

    # -- birthday hard-NAT attempt (socket/hard_nat.py) -----------------------------------

    def _has_direct_path(self) -> bool:
        engine: Any = self.quic
        return any(
            s.validated and not s.abandoned and isinstance(s.remote, IpPath)
            for s in engine.path_snapshots()
        )

    def _hard_nat_poll(self, now: float) -> None:
        engine: Any = self.quic
        attempt = self.hard_nat
        if attempt is None:
            if not self.handshake_complete:
                return
            if not engine.hard_nat_negotiated:
                self._hard_nat_done = True  # the peer does not take part: never
                return
            if self._hard_nat_at is None:
                self._hard_nat_at = now + HARD_NAT_DELAY
                return
            if now < self._hard_nat_at:
                return
            self._hard_nat_done = True  # one attempt per connection, whatever happens next
            if self._has_direct_path():
                return
            peer = [(p.host, p.port) for p in engine.nat_peer_addresses() if isinstance(p, IpPath)]
            targets = select_targets(peer)
            if not targets:
                logger.debug("no birthday attempt: no public IPv4 candidate of the peer")
                return
            self._hard_nat_done = False
            ids = self.socket.open_aux_sockets(DEFAULT_SOCKETS)
            attempt = self.hard_nat = BirthdayPunch(
                engine.original_destination_cid, targets, now, sockets=ids
            )
            self.socket.register_probe_route(attempt.token, self)
            logger.debug("birthday attempt: %d sockets, targets %s", len(ids), targets)
        if attempt.finished(now):
            self._hard_nat_finish()
            return
        due = attempt.next_deadline()
        if due is None or now < due:
            return  # flushes run per received batch: look at the paths only when probes are due
        if self._has_direct_path():
            attempt.stop()
        for send in attempt.poll(now):
            self.socket.send(send.data, IpPath(send.addr[0], send.addr[1], send.local))

    def _hard_nat_finish(self) -> None:
        attempt = self.hard_nat
        self._hard_nat_done = True
        if attempt is None:
            return
        self.socket.unregister_probe_route(attempt.token, self)
        self.socket.close_aux_sockets(attempt.unused_sockets() if not self.closed else [])
        logger.debug(
            "birthday attempt over: %d sent, %d received, matched %s",
            attempt.sent,
            attempt.received,
            list(attempt.matched),
        )

    def on_hard_nat_probe(self, path: IpPath, probe: Probe, now: float) -> None:
        """A birthday probe for this connection arrived on ``path`` (the socket routes it)."""
        attempt = self.hard_nat
        if attempt is None or self.closed:
            return
        answers, new = attempt.on_probe(path.local, (path.host, path.port), probe)
        for send in answers:
            self.socket.send(send.data, IpPath(send.addr[0], send.addr[1], send.local))
        engine: Any = self.quic
        if new and engine.is_client and not engine.is_closing:
            logger.debug("birthday probe got through on %s: opening a path", path)
            engine.open_path(path, now)

    # -- local network changes -------------------------------------------------------------

    def refresh_candidates(self) -> None:
        """Our candidate addresses changed (e.g. a new QAD answer): re-announce them."""
        if self.manager is None or not self.manager.started or self.closed:
            return
        self.manager.refresh_candidates(self.loop.time())
        self.schedule_flush()

    def on_network_change(self) -> None:
        """Our interface addresses changed (we moved): re-announce candidates and retire IP
        paths that stay silent for :data:`NETWORK_CHANGE_GRACE` seconds."""
        if self.manager is None or not self.manager.started or self.closed:
            return
        now = self.loop.time()
        self.refresh_candidates()
        if self._netchange_timer is not None:
            self._netchange_timer.cancel()
        self._netchange_timer = self.loop.call_at(
            now + NETWORK_CHANGE_GRACE, self._close_silent_paths, now
        )

    def _close_silent_paths(self, changed_at: float) -> None:
        self._netchange_timer = None
        engine: Any = self.quic
        if self.closed or self.quic.is_closing or self.manager is None:
            return
        now = self.loop.time()
        closed = False
        for snap in engine.path_snapshots():
            if snap.abandoned or path_kind(snap.remote) not in ("ip4", "ip6"):
                continue
            st = self.stats.get(snap.remote)
            if st is None or st.last_recv is None or st.last_recv < changed_at:
                closed |= bool(engine.close_path(snap.path_id, now))
        if closed:
            # A dead direct path is gone: look for a new one (rate limits still apply).
            self.manager.schedule.on_connection_added(now)
            self.flush()

    # -- timers ----------------------------------------------------------------------------

    def _deadline(self) -> float | None:
        at = self.quic.get_timer()
        if self.manager is not None:
            m_at = self.manager.next_deadline()
            if m_at is not None and (at is None or m_at < at):
                at = m_at
        if self.socket.hard_nat and not self._hard_nat_done:
            h_at = self._hard_nat_deadline()
            if h_at is not None and (at is None or h_at < at):
                at = h_at
        if self.handshake_complete and not self.quic.is_closing:
            keep_alive_at = self._last_send + self._keep_alive
            at = keep_alive_at if at is None else min(at, keep_alive_at)
        return at

    def _hard_nat_deadline(self) -> float | None:
        attempt = self.hard_nat
        if attempt is None:
            return self._hard_nat_at
        at = attempt.next_deadline()
        return attempt.ends if at is None else min(at, attempt.ends)

    def _arm_timer(self) -> None:
        at = self._deadline()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.closed:
            return
        now = self.loop.time()
        quic_at = self.quic.get_timer()
        if quic_at is not None and now >= quic_at:
            self.quic.handle_timer(now)
        if (
            self.handshake_complete
            and not self.quic.is_closing
            and now >= self._last_send + self._keep_alive
        ):
            self.quic.send_ping(0)
        self.flush()

    def _terminate(self) -> None:
        self.closed = True
        if self.hard_nat is not None:
            self._hard_nat_finish()
            self.socket.close_aux_sockets(self.hard_nat.sockets)
        if self._netchange_timer is not None:
            self._netchange_timer.cancel()
            self._netchange_timer = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.socket.remove_driver(self)

    def abort(self) -> None:
        """Drop the connection without sending anything more (endpoint shutdown)."""
        if not self.closed:
            self._terminate()
