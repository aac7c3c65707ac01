"""Multipath paths of the native engine: open, accept, validate, choose, time out, abandon.

Owns :class:`PathsLayer`: the client's path opens (and their retry while blocked on path ids or
peer CIDs), the server's acceptance of new path ids, PATH_CHALLENGE/RESPONSE validation, path
status, the data-path choice, per-path timers and abandonment, when to issue CIDs for further
path ids (the bookkeeping is :mod:`.connection_ids`), the path frame handlers, and the
validation of a peer's new address before a path follows it (migration, RFC 9000 §9).
"""

from __future__ import annotations

from typing import Any

from aioquic.quic.packet_builder import QuicDeliveryState
from aioquic.quic.recovery import QuicPacketRecovery, QuicPacketSpace

from .connection_state import (
    MAX_PATH_RESPONSES,
    MAX_PATHS,
    NO_ERROR,
    ConnectionState,
    ip_of,
)
from .frames import (
    PROTOCOL_VIOLATION,
    Frame,
    FrameType,
    MaxPathIdFrame,
    PathAbandonFrame,
    PathChallengeFrame,
    PathCidsBlockedFrame,
    PathResponseFrame,
    PathsBlockedFrame,
    PathStatusFrame,
    QuicProtocolViolation,
)
from .nat_traversal import NatTraversalClient
from .paths import (
    MAX_CHALLENGE_TRIES,
    MAX_PENDING_OPENS,
    MIN_CHALLENGE_INTERVAL,
    PENDING_OPEN_LIFETIME,
    PENDING_OPEN_RETRY,
    PathAbandoned,
    PathOpened,
    PathSnapshot,
    PathState,
    PathStatusChanged,
    reset_congestion,
)

OFFPATH_PROBE, OFFPATH_RESPONSE, OFFPATH_VALIDATION = 0, 1, 2
"""Kinds of off-path datagrams: NAT probe, answer to a probe, challenge of a migration."""


class PathsLayer(ConnectionState):
    """Path lifecycle methods of the engine (state lives in :class:`ConnectionState`)."""

    def _path_timer(self) -> float | None:
        times: list[float] = []
        for path in self._paths.values():
            if path.path_id and not path.abandoned and not path.peer_cid:
                # Nothing can be sent on it before the peer's CID arrives (a path the client
                # opened just before its CIDs reached us): only the idle timer runs.
                if path.idle_at is not None:
                    times.append(path.idle_at)
                continue
            if path.path_id and not path.abandoned:
                space = path.space
                if space.ack_at is not None:
                    times.append(space.ack_at)
                loss = path.recovery.get_loss_detection_time(amplification_limited=False)
                if loss is not None:
                    times.append(loss)
            for t in (
                path.challenge_at,
                path.idle_at,
                path.keepalive_at,
                path.drain_at,
                path.migrate_at,
            ):
                if t is not None:
                    times.append(t)
        if self._nat is not None:
            t = self._nat.next_deadline()
            if t is not None:
                times.append(t)
        if self._pending_open_at is not None:
            times.append(self._pending_open_at)
        if self._offpath:
            times.append(0.0)
        return min(times) if times else None

    def _handle_path_timers(self, now: float) -> None:
        if self._pending_open_at is not None and now >= self._pending_open_at:
            self._retry_pending_opens(now)
        for path in list(self._paths.values()):
            if path.drain_at is not None:
                if now >= path.drain_at:
                    path.drain_at = None
                    self.cids.retire_path(path.path_id)
                    if path.path_id:
                        del self._paths[path.path_id]
                continue
            if path.abandoned:
                continue
            if path.migrate_at is not None and now >= path.migrate_at:
                self._challenge_new_address(path, now)
            if path.path_id:
                loss = path.recovery.get_loss_detection_time(amplification_limited=False)
                if loss is not None and now >= loss:
                    path.recovery.on_loss_detection_timeout(now=now)
            if path.idle_at is not None and now >= path.idle_at:
                # Silent for too long: give it up if another path remains.
                path.idle_at = None
                if not self.close_path(path.path_id, now, error_code=NO_ERROR):
                    path.idle_at = now + self.path_idle_timeout(path.addr)
                continue
            if (
                not path.validated
                and path.challenge_at is not None
                and path.challenge_tries >= MAX_CHALLENGE_TRIES
                and now >= path.challenge_at
            ):
                self._abandon(path, now, NO_ERROR, send=True)
                continue
            if path.keepalive_at is not None and now >= path.keepalive_at:
                path.ping_pending = len(self._paths) > 1
                path.keepalive_at = now + self.path_keep_alive

    def _on_peer_address_change(self, path: PathState, addr: Any, now: float) -> None:
        """Non-probing traffic of ``path`` came from ``addr``: challenge it before moving.

        Until it answers, the path keeps its old address and everything sent to ``addr`` is
        held to 3x what came from it; a copy of the peer's packets sent by a third party thus
        reflects at most 3x its own bytes, and a real rebinding moves one round trip later.
        """
        if path.abandoned or path.migrate_addr == addr or path.addr == addr:
            return  # (the packet's own PATH_RESPONSE may have just moved the path here)
        if path.migrate_addr is not None:
            self._amplification.forget(path.migrate_addr)
        path.migrate_addr = addr
        path.migrate_challenge = self._random(8)
        path.migrate_tries = 0
        self._challenge_new_address(path, now)

    def _challenge_new_address(self, path: PathState, now: float) -> None:
        addr = path.migrate_addr
        if addr is None or path.migrate_challenge is None:
            path.migrate_at = None
            return
        if path.abandoned or path.migrate_tries >= MAX_CHALLENGE_TRIES:
            self._end_migration(path)
            return
        path.migrate_tries += 1
        path.migrate_at = now + max(MIN_CHALLENGE_INTERVAL, path.recovery.get_probe_timeout())
        self._offpath.append((addr, path.path_id, path.migrate_challenge, OFFPATH_VALIDATION))

    def _end_migration(self, path: PathState) -> None:
        if path.migrate_addr is not None:
            self._amplification.forget(path.migrate_addr)
        path.migrate_addr = None
        path.migrate_challenge = None
        path.migrate_at = None
        path.migrate_tries = 0

    def _migrate(self, path: PathState, now: float) -> None:
        """The new address answered: the path follows its peer there."""
        old, new = path.addr, path.migrate_addr
        self._end_migration(path)
        path.addr = new
        self.rebindings += 1
        old_ip, new_ip = ip_of(old), ip_of(new)
        if old_ip is None or new_ip is None or old_ip[0] != new_ip[0]:
            # Another IP is another network path: start its congestion state afresh.
            reset_congestion(
                path.recovery, self.settings.congestion_control, self._max_datagram_size
            )
        if path.idle_at is not None:
            path.idle_at = now + self.path_idle_timeout(new)

    def _on_path_challenge(self, level: int, frame: PathChallengeFrame, now: float) -> None:
        if self._rx_challenged:
            return  # one answer per packet: 64 challenges in a packet must not mean 64 replies
        self._rx_challenged = True
        if self._rx_off_path:
            # A NAT traversal probe (or a peer moving): answer where it came from.
            self._offpath.append(
                (self._rx_addr, self._rx_path.path_id, frame.data, OFFPATH_RESPONSE)
            )
        elif self._rx_path is self._path0:
            self._path_responses.append(frame.data)
        elif len(self._rx_path.responses) < MAX_PATH_RESPONSES:
            self._rx_path.responses.append(frame.data)

    def _on_max_path_id(self, level: int, frame: MaxPathIdFrame, now: float) -> None:
        if frame.max_path_id > self._remote_max_path_id:
            self._remote_max_path_id = frame.max_path_id
            self._issue_path_cids()
            self._wake_pending_opens(now)

    def _on_paths_blocked(self, level: int, frame: PathsBlockedFrame, now: float) -> None:
        # Informational: we raise MAX_PATH_ID as paths close, never on request.
        self.peer_paths_blocked += 1

    def _on_path_cids_blocked(self, level: int, frame: PathCidsBlockedFrame, now: float) -> None:
        """The peer has no CID of ours for a path id: re-announce the live ones.

        We always keep CIDS_PER_PATH live CIDs per path id, so a peer blocked on one most likely
        lost the PATH_NEW_CONNECTION_ID frames; repeating a CID frame is harmless (RFC 9000 §19.15).
        """
        self.peer_path_cids_blocked += 1
        if frame.path_id > self._local_max_path_id:
            raise QuicProtocolViolation(
                "PATH_CIDS_BLOCKED above our maximum path id",
                code=PROTOCOL_VIOLATION,
                frame_type=FrameType.PATH_CIDS_BLOCKED,
            )
        self.cids.reannounce_path(frame.path_id)

    def _issue_path_cids(self) -> None:
        """Announce CIDs for every path id up to min(our, peer's) max that has none yet."""
        if not self._multipath or not self._handshake_complete or self._cids_due:
            return
        self.cids.issue_paths(min(self._local_max_path_id, self._remote_max_path_id))

    def _new_path(self, path_id: int, addr: Any, now: float, *, available: bool) -> PathState:
        space = QuicPacketSpace(is_application_data=True)
        recovery = QuicPacketRecovery(
            congestion_control_algorithm=self.settings.congestion_control,
            initial_rtt=self.settings.initial_rtt,
            max_datagram_size=self._max_datagram_size,
            peer_completed_address_validation=True,
            send_probe=lambda: None,
        )
        recovery.spaces = [space]
        recovery.handshake_confirmed = True
        recovery.max_ack_delay = self._recovery.max_ack_delay
        path = PathState(path_id, addr, space, recovery, validated=False, available=available)
        recovery._send_probe = lambda: setattr(path, "probe_pending", True)
        self._set_path_peer_cid(path)
        path.challenge_at = now
        path.idle_at = now + self.path_idle_timeout(addr)
        self._paths[path_id] = path
        return path

    def _set_path_peer_cid(self, path: PathState) -> None:
        first = self.cids.first_peer_cid(path.path_id)
        if first is not None:
            path.peer_cid_seq, path.peer_cid = first

    def _accept_path(self, path_id: int, addr: Any, now: float) -> PathState | None:
        """The peer (a client) opened ``path_id`` towards us; validate it before using it."""
        if (
            self._is_client
            or not self._multipath
            or path_id > self._local_max_path_id
            or path_id not in self.cids.path_host_cids
            or len(self._paths) >= MAX_PATHS
        ):
            return None
        return self._new_path(path_id, addr, now, available=True)

    def _data_path(self) -> PathState | None:
        """The path that carries data: validated, not abandoned, AVAILABLE before BACKUP."""
        path0 = self._path0
        if len(self._paths) == 1:
            return None if path0.abandoned else path0
        if not self._handshake_confirmed:
            return path0
        best: PathState | None = None
        best_key: tuple[int, float, int] | None = None
        for path in self._paths.values():
            if path.abandoned or not path.validated or path.addr is None:
                continue
            if path is not path0 and not path.peer_cid:
                continue
            rtt = path.rtt
            key = (0 if path.available else 1, rtt if rtt is not None else 1e9, path.path_id)
            if best_key is None or key < best_key:
                best, best_key = path, key
        return best

    def open_path(self, addr: Any, now: float, *, available: bool = False) -> int | None:
        """Open a new path to ``addr`` (client only); returns its id, None if blocked.

        Blocked means no free path id (we send PATHS_BLOCKED) or no CID from the peer for the
        next one (PATH_CIDS_BLOCKED). The engine then retries by itself every
        PENDING_OPEN_RETRY (and as soon as MAX_PATH_ID or a CID arrives) for up to
        PENDING_OPEN_LIFETIME; a path opened later shows up as :class:`PathOpened`.
        """
        return self._open_path(addr, now, available=available, from_nat=False)

    def _open_path(self, addr: Any, now: float, *, available: bool, from_nat: bool) -> int | None:
        if not self._is_client:
            raise RuntimeError("only the client opens paths")
        if not self._multipath or not self._handshake_confirmed or self._closing:
            return None
        path_id = self._try_open(addr, now, available)
        if path_id is not None:
            self._pending_opens.pop(addr, None)
            return path_id
        if addr not in self._pending_opens and len(self._pending_opens) >= MAX_PENDING_OPENS:
            return None  # bounded: the NAT traversal round retries its hits anyway
        self._pending_opens[addr] = (available, from_nat, now + PENDING_OPEN_LIFETIME)
        if self._pending_open_at is None:
            self._pending_open_at = now + PENDING_OPEN_RETRY
        return None

    def _try_open(self, addr: Any, now: float, available: bool) -> int | None:
        """Open a path to ``addr`` now if a path id and a peer CID allow it."""
        for path in self._paths.values():
            if path.addr == addr and not path.abandoned:
                return path.path_id
        if len(self._paths) >= MAX_PATHS:
            return None
        path_id = self._next_path_id
        if path_id > self._remote_max_path_id:
            # The peer's limit: tell it once per limit value (noq does the same).
            if self._paths_blocked_sent != self._remote_max_path_id:
                self._paths_blocked_sent = self._remote_max_path_id
                self._queue_ctrl(PathsBlockedFrame(self._remote_max_path_id))
            return None
        if path_id > self._local_max_path_id:
            return None  # our own limit: it grows as paths close
        if not self.cids.peer_cids.get(path_id):
            if path_id not in self._cids_blocked_sent:
                self._cids_blocked_sent.add(path_id)
                self._queue_ctrl(PathCidsBlockedFrame(path_id, 0))
            return None
        self._next_path_id += 1
        self._cids_blocked_sent.discard(path_id)
        self._new_path(path_id, addr, now, available=available)
        return path_id

    def _wake_pending_opens(self, now: float) -> None:
        if self._pending_opens:
            self._pending_open_at = now

    def _retry_pending_opens(self, now: float) -> None:
        """Retry blocked opens; drop those whose candidate is gone or that waited too long."""
        nat = self._nat
        remote = (
            set(nat.remote_addresses.values()) if isinstance(nat, NatTraversalClient) else set()
        )
        for addr, (available, from_nat, give_up_at) in list(self._pending_opens.items()):
            done = from_nat and ip_of(addr) not in remote  # the candidate is gone
            done = done or now >= give_up_at or self._closing
            if done or self._try_open(addr, now, available) is not None:
                del self._pending_opens[addr]
        self._pending_open_at = now + PENDING_OPEN_RETRY if self._pending_opens else None

    def _still_blocked(self, frame: Frame) -> bool:
        if isinstance(frame, PathsBlockedFrame):
            return frame.max_path_id == self._remote_max_path_id and bool(self._pending_opens)
        if isinstance(frame, PathCidsBlockedFrame):
            return not self.cids.peer_cids.get(frame.path_id) and bool(self._pending_opens)
        return True

    def close_path(self, path_id: int, now: float, error_code: int = 0) -> bool:
        """Abandon a path; refused (False) for the last usable one."""
        path = self._paths.get(path_id)
        if path is None or path.abandoned:
            return False
        others = [
            p for p in self._paths.values() if p is not path and not p.abandoned and p.validated
        ]
        if not others:
            return False
        self._abandon(path, now, error_code, send=True)
        return True

    def set_path_status(self, path_id: int, available: bool) -> None:
        """Set our status of a path (AVAILABLE: use it for data; BACKUP: keep it in reserve)."""
        path = self._paths.get(path_id)
        if path is None or path.abandoned or path.available == available:
            return
        path.available = available
        path.status_seq += 1
        if self._multipath:
            self._queue_ctrl(PathStatusFrame(path_id, path.status_seq, available))
        self._events.append(PathStatusChanged(path_id=path_id, available=available))

    def path_snapshots(self) -> list[PathSnapshot]:
        """The current paths, for ``Connection.paths()`` and the path manager."""
        data = self._data_path()
        return [
            PathSnapshot(
                path_id=p.path_id,
                remote=p.addr,
                validated=p.validated,
                abandoned=p.abandoned,
                available=p.available,
                carries_data=p is data,
                rtt=p.rtt,
                datagrams_sent=p.datagrams_sent,
                datagrams_recv=p.datagrams_recv,
                bytes_sent=p.bytes_sent,
                bytes_recv=p.bytes_recv,
            )
            for p in self._paths.values()
        ]

    def _abandon(self, path: PathState, now: float, error_code: int, *, send: bool) -> None:
        if path.abandoned:
            return
        path.abandoned = True
        if send:
            self._queue_ctrl(PathAbandonFrame(path.path_id, error_code))
        # Resend what was in flight on it elsewhere (aioquic's discard fires no callbacks).
        space = path.space
        lost = list(space.sent_packets.values())
        path.recovery.discard_space(space)
        space.discarded = True
        space.ack_at = None
        for packet in lost:
            for handler, args in packet.delivery_handlers:
                handler(QuicDeliveryState.LOST, *args)
        path.challenge_at = None
        path.idle_at = None
        path.keepalive_at = None
        self._end_migration(path)
        path.drain_at = now + 3 * self._recovery.get_probe_timeout()
        # Path ids are never reused: give the peer one more (noq does the same).
        if self._multipath:
            self._local_max_path_id += 1
            self._queue_ctrl(MaxPathIdFrame(self._local_max_path_id))
            self._issue_path_cids()
        self._events.append(
            PathAbandoned(path_id=path.path_id, remote=path.addr, error_code=error_code)
        )

    def _on_path_abandon(self, level: int, frame: PathAbandonFrame, now: float) -> None:
        path = self._paths.get(frame.path_id)
        if path is not None and not path.abandoned:
            self._abandon(path, now, frame.error_code, send=True)

    def _on_path_response(self, level: int, frame: PathResponseFrame, now: float) -> None:
        addr = self._rx_addr
        for path in self._paths.values():
            if path.migrate_challenge == frame.data and path.migrate_addr == addr:
                if not path.abandoned:
                    self._migrate(path, now)
                return
        for path in self._paths.values():
            if path.challenge is not None and path.challenge == frame.data and path.addr == addr:
                path.challenge = None
                path.challenge_at = None
                if not path.validated and not path.abandoned:
                    path.validated = True
                    path.keepalive_at = now + self.path_keep_alive
                    self._events.append(PathOpened(path_id=path.path_id, remote=path.addr))
                return
        nat = self._nat
        ip = ip_of(addr)
        if nat is None or ip is None:
            return
        hit = nat.on_path_response(frame.data, ip)
        if hit is not None and isinstance(nat, NatTraversalClient):
            self._open_path(addr, now, available=False, from_nat=True)

    def _on_path_new_cid(self, path_id: int, now: float) -> None:
        path = self._paths.get(path_id)
        if path is not None and not path.peer_cid:
            self._set_path_peer_cid(path)
        self._wake_pending_opens(now)
