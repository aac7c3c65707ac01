"""n0 NAT traversal inside the native engine: candidates, ADD_ADDRESS/REACH_OUT, off-path probes.

Owns :class:`NatLayer`: the public NAT traversal calls the socket makes, the QNT frame handlers
(feeding :mod:`.nat_traversal`'s role state machines) and the off-path datagrams (NAT probes,
answers to probes, challenges of a migrating peer's new address), sent as single 1-RTT packets
outside congestion control, the last two within 3x what their address sent us.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aioquic.quic.packet import QuicPacketType
from aioquic.quic.packet_builder import QuicPacketBuilderStop

from .connection_paths import OFFPATH_PROBE, OFFPATH_RESPONSE, OFFPATH_VALIDATION
from .connection_send import SendLayer
from .connection_state import ip_of
from .frames import (
    PROTOCOL_VIOLATION,
    AddAddressFrame,
    FrameType,
    QuicProtocolViolation,
    ReachOutFrame,
    RemoveAddressFrame,
)
from .nat_traversal import (
    Addr,
    NatTraversalClient,
    NatTraversalError,
    NatTraversalServer,
    TooManyAddresses,
    is_probeable,
)
from .packet_writer import ShortPacketWriter
from .paths import MIN_VALIDATION_DATAGRAM, PathState
from .transport_parameters import IROH_NAT_TRAVERSAL_ADDRESSES


class NatLayer(SendLayer):
    """NAT traversal methods of the engine."""

    def _start_nat_traversal(self) -> None:
        """After the handshake: build our role's QNT state machine if both sides offered it."""
        peer = self._peer_tp
        if not (self._qnt_offer and peer is not None and peer.nat_traversal):
            return
        common: dict[str, Any] = {
            "max_remote_addresses": IROH_NAT_TRAVERSAL_ADDRESSES,
            "max_local_addresses": peer.nat_traversal,
            "random_bytes": self._random,
            "initial_rtt": self.settings.initial_rtt,
        }
        if self._is_client:
            self._nat = NatTraversalClient(**common)
        else:
            self._nat = NatTraversalServer(**common)
        for host, port in list(self._nat_local):
            self._nat_add_local(host, port)

    @property
    def nat_traversal_negotiated(self) -> bool:
        """Whether both sides offered n0 NAT traversal (and multipath)."""
        return self._nat is not None

    @property
    def hard_nat_negotiated(self) -> bool:
        """Whether both sides offered the birthday hard-NAT attempt (and NAT traversal)."""
        peer = self._peer_tp
        return self._hard_nat_offer and self._nat is not None and peer is not None and peer.hard_nat

    def nat_peer_addresses(self) -> list[Any]:
        """The peer's candidate addresses: the server's ADD_ADDRESSes (client) or the
        addresses the client reached out from (server), as engine addresses."""
        nat = self._nat
        if isinstance(nat, NatTraversalClient):
            return self.nat_remote_addresses()
        return [self.make_addr(host, port) for host, port in self._nat_reach_outs]

    def add_nat_address(self, host: str, port: int) -> None:
        """Add one of our candidate addresses (server: announced with ADD_ADDRESS)."""
        key = (host, port)
        if key in self._nat_local or len(self._nat_local) >= IROH_NAT_TRAVERSAL_ADDRESSES:
            return
        self._nat_local[key] = None
        if self._nat is not None:
            self._nat_add_local(host, port)

    def remove_nat_address(self, host: str, port: int) -> None:
        """Withdraw a candidate address."""
        if self._nat_local.pop((host, port), None) is None:
            return
        ip = ip_of((host, port))
        nat = self._nat
        if ip is None or nat is None:
            return
        if isinstance(nat, NatTraversalServer):
            frame = nat.remove_local_address(ip)
            if frame is not None:
                self._queue_ctrl(frame)
        else:
            nat.remove_local_address(ip)

    def _nat_add_local(self, host: str, port: int) -> None:
        ip = ip_of((host, port))
        nat = self._nat
        if ip is None or nat is None:
            return
        try:
            if isinstance(nat, NatTraversalServer):
                frame = nat.add_local_address(ip)
                if frame is not None:
                    self._queue_ctrl(frame)
            else:
                nat.add_local_address(ip)
        except NatTraversalError:
            pass  # the peer takes no more; the first ones are the best anyway

    def nat_remote_addresses(self) -> list[Any]:
        """Client: the server's advertised candidates (as engine addresses)."""
        nat = self._nat
        if not isinstance(nat, NatTraversalClient):
            return []
        return [self.make_addr(str(ip), port) for ip, port in nat.remote_addresses.values()]

    def initiate_nat_traversal_round(self, now: float) -> None:
        """Client: send REACH_OUT for our candidates and probe the server's.

        Raises :class:`NatTraversalError` (``NotEnoughAddresses`` without local candidates).
        """
        nat = self._nat
        if not isinstance(nat, NatTraversalClient):
            raise NatTraversalError("n0 NAT traversal not negotiated (or not the client)")
        for frame in nat.initiate_round(now):
            self._queue_ctrl(frame)

    def _on_add_address(self, level: int, frame: AddAddressFrame, now: float) -> None:
        if isinstance(self._nat, NatTraversalClient):
            self._nat_guard(lambda nat: nat.on_add_address(frame))

    def _on_remove_address(self, level: int, frame: RemoveAddressFrame, now: float) -> None:
        if isinstance(self._nat, NatTraversalClient):
            self._nat.on_remove_address(frame)

    def _on_reach_out(self, level: int, frame: ReachOutFrame, now: float) -> None:
        if isinstance(self._nat, NatTraversalServer):
            self._nat_guard(lambda nat: nat.on_reach_out(frame, now))
            if not is_probeable((frame.ip, frame.port)):
                return
            key = (str(frame.ip), frame.port)
            self._nat_reach_outs.pop(key, None)
            self._nat_reach_outs[key] = None
            while len(self._nat_reach_outs) > IROH_NAT_TRAVERSAL_ADDRESSES:
                del self._nat_reach_outs[next(iter(self._nat_reach_outs))]

    def _nat_guard(self, call: Callable[[Any], Any]) -> None:
        try:
            call(self._nat)
        except TooManyAddresses:
            raise QuicProtocolViolation(
                "too many NAT traversal addresses", code=PROTOCOL_VIOLATION
            ) from None

    def _send_off_path(self, now: float, out: list[tuple[bytes, Any]]) -> None:
        """Off-path datagrams, one 1-RTT packet each, outside congestion control.

        NAT probes go unpadded to the addresses a NAT traversal round names (noq does the
        same; their rate is bounded in :mod:`.nat_traversal`). Answers to probes and the
        challenges of a migrating peer go to addresses no path has validated: they are held
        to 3x what that address sent us and padded to 1200 bytes only within that budget.
        """
        nat = self._nat
        if nat is not None:
            deadline = nat.next_deadline()
            if deadline is not None and now >= deadline:
                via = self._probe_path()
                for (ip, port), challenge in nat.poll_probes(now):
                    if via is not None:
                        target = self.make_addr(str(ip), port)
                        self._offpath.append((target, via.path_id, challenge, OFFPATH_PROBE))
        while self._offpath:
            addr, path_id, data, kind = self._offpath.popleft()
            path = self._paths.get(path_id)
            if kind == OFFPATH_VALIDATION:
                if path is None or path.abandoned:
                    continue
            elif path is None or path.abandoned or not path.validated:
                path = self._probe_path()
            seal = self._seal_for(path.path_id) if path is not None else None
            if path is None or seal is None:
                continue
            limited = kind != OFFPATH_PROBE and not self._is_validated_address(addr)
            budget = self._amplification.budget(addr) if limited else MIN_VALIDATION_DATAGRAM
            # The 1-RTT writer, whose padding we control: aioquic's builder pads every
            # PATH_CHALLENGE / PATH_RESPONSE datagram to its full size.
            builder = ShortPacketWriter(
                peer_cid=self.cids.peer_cid if path is self._path0 else path.peer_cid,
                max_datagram_size=min(self._max_datagram_size, MIN_VALIDATION_DATAGRAM),
                packet_number=path.pn,
                largest_acked=path.space.largest_acked_packet,
            )
            try:
                builder.start_packet(QuicPacketType.ONE_RTT, seal)
                is_response = kind == OFFPATH_RESPONSE
                frame_kind = FrameType.PATH_RESPONSE if is_response else FrameType.PATH_CHALLENGE
                builder.start_frame(frame_kind, capacity=9).push_bytes(data)
                reflexive = ip_of(addr) if is_response else None
                if (
                    reflexive is not None
                    and isinstance(nat, NatTraversalClient)
                    and self._wants_path_to(reflexive)
                ):
                    # Client: challenge the probe's source too, so an answer from there opens
                    # a path (wire doc §3.4 step 5): its unadvertised (peer-reflexive) source,
                    # or an advertised one we have no live path to. The latter matters when
                    # the server's probes come late (REACH_OUT queued behind bulk data on the
                    # relay after we moved): our own probes of that round are long over, and
                    # without this the direct path would wait for the next round.
                    bundled = nat.reflexive_challenge(reflexive)
                    builder.start_frame(FrameType.PATH_CHALLENGE, capacity=9).push_bytes(bundled)
                # Probes stay small (noq does not pad them); answers and validation challenges
                # are full-size where the 3x budget allows (RFC 9000 §8.2.1).
                builder.needs_padding = kind != OFFPATH_PROBE and budget >= MIN_VALIDATION_DATAGRAM
            except QuicPacketBuilderStop:
                continue
            datagrams, _packets = builder.flush()
            size = sum(len(d) for d in datagrams)
            if limited and size > budget:
                # Over budget even unpadded: the packet number is skipped, which is allowed.
                path.pn = builder.packet_number
                continue
            # Not registered with recovery: probes are neither in flight nor retransmitted.
            path.pn = builder.packet_number
            if limited:
                self._amplification.on_send(addr, size)
            for datagram in datagrams:
                out.append((datagram, addr))

    def _is_validated_address(self, addr: Any) -> bool:
        return any(p.validated and not p.abandoned and p.addr == addr for p in self._paths.values())

    def _wants_path_to(self, ip: Addr) -> bool:
        """Client: whether a probe from ``ip`` should be challenged back (see above)."""
        nat = self._nat
        if not isinstance(nat, NatTraversalClient) or ip not in nat.remote_addresses.values():
            return True
        # Only while no direct path is alive: with one, the next round is soon enough, and
        # a redundant path the path manager closed is not reopened by a late probe.
        return not any(
            not p.abandoned and p.validated and ip_of(p.addr) is not None
            for p in self._paths.values()
        )

    def _probe_path(self) -> PathState | None:
        """The validated path whose CID and PN space carry NAT probes (path 0 if possible)."""
        path0 = self._path0
        if not path0.abandoned and self.cids.peer_cid:
            return path0
        return self._data_path()
