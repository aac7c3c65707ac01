"""aioiroh's own sans-I/O QUIC connection engine (RFC 9000/9001/9002 plus multipath framing).

:class:`IrohConnection` implements the :class:`~aioiroh.quic.engine.QuicEngine` protocol with the
same constructor as :class:`~aioiroh.quic.aioquic_connection.IrohQuicConnection`, so the endpoint
can use either. It reuses aioquic's pieces that are path-agnostic (TLS ``Context``, ``QuicStream``,
``QuicPacketRecovery``, ``QuicPacketBuilder``, ``Buffer``) and owns what aioquic's monolithic
connection cannot do for multipath: packet protection with the path nonce and retained key
phases (:mod:`.packet_protection`), the frame codec with placement rules (:mod:`.frames`),
iroh's transport parameters (:mod:`.transport_parameters`), stream flow control
(:mod:`.streams`) and connection IDs.

Milestones implemented: M1 (single path, RFC 9000 peer) and M2 (multipath negotiated through
``initial_max_path_id``, only path 0 used: our 1-RTT ACKs become PATH_ACK, CIDs are announced with
PATH_NEW_CONNECTION_ID, and iroh's path frames are accepted), M3+ (the client opens more paths,
the server accepts them; a blocked open sends PATHS_BLOCKED / PATH_CIDS_BLOCKED once and is
retried) and n0 NAT traversal (ADD_ADDRESS / REACH_OUT rounds, off-path probes).

This module owns the driving contract (public calls, timers, receiving, frame dispatch and
the handshake's progress); the rest is layered below it, one concern per module:
:mod:`.connection_state` (attributes, TLS and keys) <- :mod:`.connection_paths` (path
lifecycle) <- :mod:`.connection_send` (packet assembly) <- :mod:`.connection_nat` (NAT
traversal and off-path probes) <- :class:`IrohConnection`, with connection IDs in their own
object (:mod:`.connection_ids`).

No asyncio, sockets, clocks or global randomness here: time comes in as ``now`` and random bytes
from the injectable ``random_bytes`` callable (``os.urandom`` by default).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any, Final, Literal

from aioquic import tls
from aioquic.quic import events
from aioquic.quic.packet import (
    RETRY_INTEGRITY_TAG_SIZE,
    QuicHeader,
    QuicPacketType,
    QuicStreamFrame,
    get_retry_integrity_tag,
    pull_quic_header,
)
from aioquic.quic.packet_builder import QuicDeliveryState

from ..base.key import PublicKey
from ._aioquic import UINT_VAR_MAX, Buffer, CryptoError
from .aioquic_connection import CID_LENGTH, IrohQuicConnection
from .connection_nat import NatLayer
from .connection_state import (
    ACK_DELAY,
    ACK_EVERY,
    APP,
    CRYPTO_BUFFER_EXCEEDED,
    CRYPTO_ERROR,
    EPOCHS,
    HANDSHAKE,
    INITIAL,
    INTERNAL_ERROR,
    MAX_CRYPTO_BUFFER,
    MAX_PENDING_DATAGRAMS,
    NO_ERROR,
    PACKET_FLAG,
    QUIC_V1,
    Seal,
)
from .frames import (
    FRAME_ENCODING_ERROR,
    PROTOCOL_VIOLATION,
    AckFrame,
    AckFrequencyFrame,
    AddAddressFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    FrameType,
    HandshakeDoneFrame,
    ImmediateAckFrame,
    MaxDataFrame,
    MaxPathIdFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathAbandonFrame,
    PathChallengeFrame,
    PathCidsBlockedFrame,
    PathResponseFrame,
    PathsBlockedFrame,
    PathStatusFrame,
    PingFrame,
    QuicProtocolViolation,
    ReachOutFrame,
    RemoveAddressFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamsBlockedFrame,
    pull_frame,
    pull_frame_type,
)
from .packet_protection import PacketProtectionError
from .paths import PathState
from .transport_parameters import IrohTransportParameters

# Frames that do not make a packet "non-probing" (RFC 9000 §9.1).
_PROBING_FRAMES: Final = frozenset(
    {PaddingFrame, PathChallengeFrame, PathResponseFrame, NewConnectionIdFrame}
)

__all__ = ["ENGINE_ENV", "IrohConnection", "new_connection"]

_Seal = Seal  # the old private name, which tests import from here

ENGINE_ENV: Final = "AIOIROH_ENGINE"
"""Environment variable choosing the engine in :func:`new_connection`: ``aioquic`` or ``native``."""


def _error_code_of(exc: QuicProtocolViolation) -> int:
    return int(exc.code) if exc.code is not None else PROTOCOL_VIOLATION


class IrohConnection(NatLayer):
    """A QUIC connection speaking iroh's TLS profile and multipath framing; sans-I/O.

    Same driving contract as aioquic's ``QuicConnection``: feed :meth:`receive_datagram`, then
    drain :meth:`next_event`, send :meth:`datagrams_to_send`, and arm :meth:`get_timer`.
    """

    # -- QuicEngine: read-only views -------------------------------------------------------

    @property
    def peer_id(self) -> PublicKey | None:
        """The peer's authenticated key, once its CertificateVerify checked out."""
        return self.tls.peer_id

    @property
    def auth_failure(self) -> str | None:
        """Why we refused the peer's key, if we did."""
        return self.tls.auth_failure

    @property
    def alpn(self) -> bytes | None:
        """The negotiated ALPN."""
        name = self.tls.alpn_negotiated
        return None if name is None else name.encode("ascii")

    @property
    def is_client(self) -> bool:
        """Whether we dialed."""
        return self._is_client

    @property
    def is_terminated(self) -> bool:
        """Whether the connection is over (ConnectionTerminated was emitted)."""
        return self._terminated

    @property
    def is_closing(self) -> bool:
        """Whether a close is in progress or done."""
        return self._closing or self._terminated or self._close_pending

    @property
    def close_event(self) -> events.ConnectionTerminated | None:
        """The ConnectionTerminated describing a close in progress (local or remote)."""
        return self._close_event

    @property
    def smoothed_rtt(self) -> float | None:
        """Smoothed RTT of path 0, once measured."""
        rec: Any = self._recovery
        return float(rec._rtt_smoothed) if rec._rtt_initialized else None

    @property
    def multipath_negotiated(self) -> bool:
        """Whether both sides sent initial_max_path_id."""
        return self._multipath

    @property
    def remote_address(self) -> Any:
        """Where we send data (the data path's address)."""
        path = self._data_path()
        return (path or self._path0).addr

    @property
    def original_destination_cid(self) -> bytes:
        """The client's first destination CID: the same bytes on both sides."""
        return self._odcid

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged (for write back-pressure)."""
        return self.streams.send_buffer_size(stream_id)

    def stream_exists(self, stream_id: int) -> bool:
        """Whether the stream is still tracked."""
        return stream_id in self.streams.streams

    def send_capacity(self, stream_id: int) -> int:
        """Bytes a writer may queue on a stream now: the peer's window left (0: wait)."""
        return self.streams.send_capacity(stream_id)

    def open_stream(self, is_unidirectional: bool = False) -> int | None:
        """Open our next stream; None until the peer's MAX_STREAMS allows one more."""
        return self.streams.open(is_unidirectional)

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """Open our next stream at once, even beyond the peer's credit (aioquic's name)."""
        return self.streams.next_stream_id(is_unidirectional)

    def stream_consumed(self, stream_id: int, n: int, now: float) -> None:
        """The application read ``n`` bytes of a stream: receive credit follows reads."""
        self.streams.consume(stream_id, n, now, self.smoothed_rtt)

    def stream_released(self, stream_id: int) -> None:
        """The application is done with a stream's receive side (see StreamManager.release)."""
        self.streams.release(stream_id)

    def next_event(self) -> events.QuicEvent | None:
        """The next pending event, or None."""
        return self._events.popleft() if self._events else None

    # -- QuicEngine: application calls -----------------------------------------------------

    def connect(self, addr: Any, now: float) -> None:
        """Start the handshake towards ``addr`` (client only)."""
        if not self._is_client:
            raise RuntimeError("connect() is for clients")
        self._path0.addr = addr
        self._dial_addr = addr
        self.cids.peer_cid = self._random(CID_LENGTH)
        self._odcid = self.cids.peer_cid
        self._install_initial(self.cids.peer_cid)
        self._idle_at = now + self.settings.idle_timeout
        self._tls_input(INITIAL, b"")

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue data on a stream (``ValueError`` if we cannot write to it)."""
        self.streams.send(stream_id, data, end_stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abort sending on a stream."""
        self.streams.reset(stream_id, error_code)

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending on a stream."""
        self.streams.stop(stream_id, error_code)

    def send_datagram_frame(self, data: bytes) -> None:
        """Queue an unreliable datagram (dropped if the peer does not accept datagrams)."""
        limit = self._remote_max_datagram_frame_size
        if limit is not None and len(data) + 8 > limit:
            raise ValueError("datagram larger than the peer accepts")
        if len(self._datagrams) >= MAX_PENDING_DATAGRAMS:
            self._datagrams.popleft()
        self._datagrams.append(bytes(data))

    def send_ping(self, uid: int) -> None:
        """Send a PING; PingAcknowledged(uid) follows when acked."""
        self._pings.append(uid)

    def close(
        self, error_code: int = NO_ERROR, frame_type: int | None = None, reason_phrase: str = ""
    ) -> None:
        """Close the connection (application close unless ``frame_type`` is given)."""
        if self._close_event is None and not self._terminated:
            self._close_event = events.ConnectionTerminated(
                error_code=error_code, frame_type=frame_type, reason_phrase=reason_phrase
            )
            self._close_pending = True

    def _close_with_error(self, code: int, frame_type: int | None, reason: str) -> None:
        self.close(error_code=code, frame_type=frame_type or 0, reason_phrase=reason)

    # -- timers ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next (or None)."""
        if self._terminated:
            return None
        self._idle_timeout_cache = None
        if self._closing:
            return self._close_at
        at = self._idle_at
        for space in self._spaces:
            if space.ack_at is not None and (at is None or space.ack_at < at):
                at = space.ack_at
        self._loss_at = self._recovery.get_loss_detection_time(
            amplification_limited=self._amplification_limited()
        )
        if self._loss_at is not None and (at is None or self._loss_at < at):
            at = self._loss_at
        if self._pacing_at is not None and (at is None or self._pacing_at < at):
            at = self._pacing_at
        if len(self._paths) > 1 or self._nat is not None or self._pending_opens:
            t = self._path_timer()
            if t is not None and (at is None or t < at):
                at = t
        if self._cids_due:
            return self._now
        return at

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due: close/idle, loss detection (ACK and pacing are send-side)."""
        self._idle_timeout_cache = None
        if self._terminated:
            return
        if self._closing:
            if self._close_at is not None and now >= self._close_at:
                self._terminate()
            return
        if self._idle_at is not None and now >= self._idle_at:
            if self._close_event is None:
                # Same shape as aioquic's, which the endpoint recognises as an idle timeout.
                self._close_event = events.ConnectionTerminated(
                    error_code=INTERNAL_ERROR, frame_type=0, reason_phrase="Idle timeout"
                )
            self._terminate()
            return
        if self._cids_due:
            self._cids_due = False
            self.cids.issue()
            self._issue_path_cids()
        if self._loss_at is not None and now >= self._loss_at:
            self._recovery.on_loss_detection_timeout(now=now)
        self._pacing_at = None
        if len(self._paths) > 1 or self._nat is not None or self._pending_opens:
            self._handle_path_timers(now)

    def _terminate(self) -> None:
        self._terminated = True
        self._closing = True
        self._close_at = None
        for space in self._spaces:
            if not space.discarded:
                self._recovery.discard_space(space)
                space.discarded = True
        assert self._close_event is not None
        self._events.append(self._close_event)
        self.cids.retire_all()

    def _enter_close(self, now: float, *, draining: bool) -> None:
        # Closing (we sent CONNECTION_CLOSE) and draining (we received one) both last 3 PTO.
        self._closing = True
        self._draining = draining
        self._close_pending = False
        if self._close_at is None:
            self._close_at = now + 3 * self._recovery.get_probe_timeout()

    # -- receiving -------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        """Process one UDP datagram (possibly several coalesced packets) from ``addr``."""
        if self._terminated:
            return
        data = bytes(data)
        self._now = now
        if self._path0.addr is None:
            self._path0.addr = addr
        if addr == self._path0.addr:
            self._bytes_received += len(data)
        pos = 0
        end_of_data = len(data)
        while pos < end_of_data:
            first = data[pos]
            if not first & 0x40:
                self.dropped_packets += 1
                return  # fixed bit clear: not QUIC v1 (iroh never greases it)
            if first & 0x80:
                try:
                    buf = Buffer(data=data)
                    buf.seek(pos)
                    header = pull_quic_header(buf, host_cid_length=CID_LENGTH)
                except ValueError:
                    self.dropped_packets += 1
                    return
                if header.version != QUIC_V1:
                    self.dropped_packets += 1
                    return
                if header.packet_type == QuicPacketType.INITIAL:
                    level = INITIAL
                elif header.packet_type == QuicPacketType.HANDSHAKE:
                    level = HANDSHAKE
                elif header.packet_type == QuicPacketType.RETRY and self._is_client:
                    self._on_retry(header, data[pos : pos + header.packet_length])
                    return  # a Retry ends its datagram
                else:
                    self.dropped_packets += 1  # 0-RTT: never used by iroh
                    pos += header.packet_length
                    continue
                end = pos + header.packet_length
                pn_offset = buf.tell() - pos
                dcid = header.destination_cid
                if dcid not in self._host_cid_set and dcid not in (self._odcid, self._retry_scid):
                    self.dropped_packets += 1
                    pos = end
                    continue
                scid: bytes | None = header.source_cid
                path_id = 0
            else:
                level = APP
                end = end_of_data
                pn_offset = 1 + CID_LENGTH
                found = self._cid_path.get(data[pos + 1 : pos + 1 + CID_LENGTH])
                if found is None:
                    self.dropped_packets += 1
                    return
                path_id = found
                scid = None
            packet = data[pos:end]
            pos = end
            self._receive_packet(level, packet, pn_offset, scid, now, path_id, addr)
            if self._terminated:
                return

    def _on_retry(self, header: QuicHeader, packet: bytes) -> None:
        """The server wants proof of our address first (RFC 9000 §17.2.5): accepted once,
        before anything else from the server, if its integrity tag is right."""
        if (
            self._retry_scid is not None
            or self.cids.peer_cid_set
            or not header.token
            or header.destination_cid != self.host_cid
            or header.source_cid == self._odcid
        ):
            self.dropped_packets += 1
            return
        tag = get_retry_integrity_tag(
            packet[:-RETRY_INTEGRITY_TAG_SIZE], self._odcid, version=QUIC_V1
        )
        if not hmac.compare_digest(tag, header.integrity_tag):
            self.dropped_packets += 1
            return
        self._retry_scid = header.source_cid
        self._retry_token = header.token
        self.cids.peer_cid = header.source_cid
        self._install_initial(header.source_cid)
        # The ClientHello goes again, under the new keys and with the token.
        space = self._spaces[INITIAL]
        lost = list(space.sent_packets.values())
        self._recovery.discard_space(space)
        for sent in lost:
            for handler, args in sent.delivery_handlers:
                handler(QuicDeliveryState.LOST, *args)

    def _receive_packet(
        self,
        level: int,
        packet: bytes,
        pn_offset: int,
        scid: bytes | None,
        now: float,
        path_id: int,
        addr: Any,
    ) -> None:
        lv = self._levels[level]
        path: PathState | None = self._path0
        if level == APP and path_id:
            path = self._paths.get(path_id)
            expected = 0 if path is None else path.space.expected_packet_number
        else:
            expected = self._spaces[level].expected_packet_number
        if lv.pp is None or (path is not None and level == APP and path.space.discarded):
            self.dropped_packets += 1
            return
        try:
            header, payload, pn = lv.pp.open(packet, pn_offset, path_id, expected)
        except (PacketProtectionError, CryptoError, ValueError):
            self.decrypt_failures += 1
            return
        if path is None:
            # Authenticated packet on a path id we issued CIDs for: the peer opens a path.
            path = self._accept_path(path_id, addr, now)
            if path is None:
                self.dropped_packets += 1
                return
        space = path.space if level == APP else self._spaces[level]
        if space.discarded:
            self.dropped_packets += 1
            return
        if pn in space.received_packets:
            return  # duplicate
        off_path = False
        if addr != path.addr:
            if path is self._path0 and self._is_client and not self._handshake_complete:
                # iroh's server handshake migration: the first answering path becomes path 0.
                path.addr = addr
            else:
                off_path = True
        if not off_path:
            path.datagrams_recv += 1
            path.bytes_recv += len(packet)
        else:
            self._amplification.on_receive(addr, len(packet))
        self._rx_path = path
        self._rx_addr = addr
        self._rx_off_path = off_path
        self._rx_challenged = False
        if self._closing:
            if not self._draining:
                self._on_packet_while_closing(level, payload, now)
            return
        reserved = header[0] & (0x0C if level != APP else 0x18)
        if reserved:
            self._close_with_error(PROTOCOL_VIOLATION, 0, "reserved bits set")
            return
        if scid is not None and not self.cids.peer_cid_set:
            # The peer's chosen CID (server: the client's SCID; client: the server's).
            self.cids.peer_cid = scid
            self.cids.peer_cid_set = True
        if level == HANDSHAKE and not self._is_client:
            self._address_validated = True
        try:
            eliciting, non_probing = self._handle_payload(level, payload, now)
        except QuicProtocolViolation as exc:
            self._close_with_error(_error_code_of(exc), exc.frame_type, str(exc))
            return
        if space.discarded:
            return
        if (
            off_path
            and level == APP
            and not self._is_client
            and pn > space.largest_received_packet
            and non_probing
        ):
            # The client's address changed under an existing path (NAT rebinding, or the
            # client moved): the path moves once the new address answers a PATH_CHALLENGE
            # (RFC 9000 §9.3, per path); a copy from a third party never moves it. Probes (a
            # NAT traversal round) carry only probing frames and start nothing.
            self._on_peer_address_change(path, addr, now)
        if pn >= space.expected_packet_number:
            space.expected_packet_number = pn + 1
        space.received_packets.add(pn)
        space.ack_queue.add(pn)
        if pn > space.largest_received_packet:
            space.largest_received_packet = pn
            space.largest_received_time = now
        if eliciting:
            if level != APP:
                space.ack_at = now
            else:
                path.unacked_eliciting += 1
                if path.unacked_eliciting >= ACK_EVERY:
                    space.ack_at = now
                elif space.ack_at is None:
                    space.ack_at = now + ACK_DELAY
        timeout = self._idle_timeout_cache
        if timeout is None:
            timeout = self._idle_timeout_cache = self._idle_timeout()
        self._idle_at = now + timeout
        if level == APP and not off_path and path.idle_at is not None:
            path.idle_at = now + self.path_idle_timeout(path.addr)
        self._eliciting_since_receive = False
        if level == HANDSHAKE and not self._spaces[INITIAL].discarded:
            # RFC 9001 §4.9.1: Initial keys go once Handshake packets flow.
            self._discard_level(INITIAL)

    def _on_packet_while_closing(self, level: int, payload: bytes, now: float) -> None:
        """Closing: the peer's CONNECTION_CLOSE moves us to draining (RFC 9000 §10.2.2);
        anything else gets our CONNECTION_CLOSE again, but only for the 1st, 2nd, 4th, 8th...
        such packet (two closing endpoints would otherwise echo closes until 3 PTO ran out)."""
        if _has_close_frame(payload, PACKET_FLAG[level], self._is_client, self._multipath):
            self._draining = True
            self._close_pending = False
            return
        self._close_echoes += 1
        if self._close_echoes & (self._close_echoes - 1) == 0:
            self._close_pending = True

    def _discard_level(self, level: int) -> None:
        space = self._spaces[level]
        if not space.discarded:
            self._recovery.discard_space(space)
            space.discarded = True
            self._levels[level].pp = None
            self._levels[level].seal = None

    def _handle_payload(self, level: int, payload: bytes, now: float) -> tuple[bool, bool]:
        """Decode and handle a packet's frames in one pass: (ack-eliciting, non-probing).

        Frames are handled as they are decoded, so frames before a malformed or misplaced one
        take effect before the connection closes over it. STREAM frames in 1-RTT packets, the
        bulk of all frames, are decoded inline (no frame object).
        """
        if not payload:
            raise QuicProtocolViolation("packet without frames", code=PROTOCOL_VIOLATION)
        buf = Buffer(data=payload)
        end = len(payload)
        packet_type = PACKET_FLAG[level]
        role: Literal["client", "server"] = "client" if self._is_client else "server"
        multipath = self._multipath
        qnt = self._nat is not None
        on_stream_data = self.streams.on_stream_data
        eliciting = non_probing = False
        while buf.tell() < end:
            frame_type = pull_frame_type(buf)
            if level == APP and 0x08 <= frame_type <= 0x0F:
                try:
                    sid = buf.pull_uint_var()
                    offset = buf.pull_uint_var() if frame_type & 0x04 else 0
                    if frame_type & 0x02:
                        data = buf.pull_bytes(buf.pull_uint_var())
                    else:
                        data = buf.pull_bytes(end - buf.tell())
                except ValueError as exc:
                    raise QuicProtocolViolation(
                        f"malformed frame {hex(frame_type)}: {exc}",
                        code=FRAME_ENCODING_ERROR,
                        frame_type=frame_type,
                    ) from None
                if offset + len(data) > UINT_VAR_MAX:
                    raise QuicProtocolViolation(
                        f"malformed frame {hex(frame_type)}: STREAM frame beyond 2^62-1",
                        code=FRAME_ENCODING_ERROR,
                        frame_type=frame_type,
                    )
                on_stream_data(sid, offset, data, bool(frame_type & 0x01))
                eliciting = non_probing = True
                continue
            frame = pull_frame(
                buf, frame_type, packet_type, role=role, multipath=multipath, qnt=qnt
            )
            kind = type(frame)
            if kind is AckFrame:
                self._on_ack(level, frame, now)  # type: ignore[arg-type]
                non_probing = True
            elif kind is PaddingFrame:
                pass
            else:
                eliciting = True
                if kind not in _PROBING_FRAMES:
                    non_probing = True
                handler = _HANDLERS.get(kind)
                if handler is not None:
                    handler(self, level, frame, now)
                if kind is ConnectionCloseFrame:
                    return False, non_probing
        return eliciting, non_probing

    def _on_ack(self, level: int, frame: AckFrame, now: float) -> None:
        if frame.path_id:
            path = self._paths.get(frame.path_id)
            if path is None or path.abandoned:
                return  # an ACK for a path already gone
            space = path.space
        else:
            path = self._path0
            space = self._spaces[level]
        if space.discarded:
            return
        largest = frame.ranges.bounds().stop - 1
        if largest >= path.pn:
            raise QuicProtocolViolation(
                "ACK for a packet never sent", code=PROTOCOL_VIOLATION, frame_type=FrameType.ACK
            )
        delay = (frame.ack_delay << self._remote_ack_delay_exponent) / 1_000_000
        path.recovery.on_ack_received(
            ack_rangeset=frame.ranges, ack_delay=delay, now=now, space=space
        )

    def _on_crypto(self, level: int, frame: CryptoFrame, now: float) -> None:
        stream = self._levels[level].crypto
        if frame.offset + len(frame.data) - stream.receiver.starting_offset() > MAX_CRYPTO_BUFFER:
            raise QuicProtocolViolation(
                "too much CRYPTO data buffered",
                code=CRYPTO_BUFFER_EXCEEDED,
                frame_type=FrameType.CRYPTO,
            )
        event = stream.receiver.handle_frame(QuicStreamFrame(offset=frame.offset, data=frame.data))
        if event is not None and event.data:
            self._tls_input(level, event.data)

    def _tls_input(self, level: int, data: bytes) -> None:
        try:
            self.tls.handle_message(data, self._crypto_buffers)
        except tls.Alert as exc:
            raise QuicProtocolViolation(
                str(exc), code=CRYPTO_ERROR + int(exc.description), frame_type=FrameType.CRYPTO
            ) from None
        for epoch, lvl in zip(EPOCHS, (INITIAL, HANDSHAKE, APP), strict=True):
            buf = self._crypto_buffers[epoch]
            if buf.tell():
                self._levels[lvl].crypto.sender.write(buf.data)
                buf.seek(0)
        if self._peer_tp is None:
            for ext_type, ext_data in self.tls.received_extensions or []:
                if ext_type == tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS:
                    self._apply_peer_parameters(ext_data)
        if not self._handshake_complete and self.tls.state in (
            tls.State.CLIENT_POST_HANDSHAKE,
            tls.State.SERVER_POST_HANDSHAKE,
        ):
            self._on_handshake_complete()

    def _apply_peer_parameters(self, data: bytes) -> None:
        params = IrohTransportParameters.decode(data)
        self._peer_tp = params
        quic = params.quic
        if self._is_client and quic.original_destination_connection_id != self._odcid:
            raise QuicProtocolViolation("original_destination_connection_id mismatch", code=0x08)
        if self._is_client and quic.retry_source_connection_id != self._retry_scid:
            raise QuicProtocolViolation("retry_source_connection_id mismatch", code=0x08)
        if quic.initial_source_connection_id is None:
            raise QuicProtocolViolation("initial_source_connection_id missing", code=0x08)
        cids = self.cids
        if cids.peer_cid_set and quic.initial_source_connection_id != cids.peer_cid:
            raise QuicProtocolViolation("initial_source_connection_id mismatch", code=0x08)
        if quic.max_idle_timeout:
            self._remote_idle_timeout = quic.max_idle_timeout / 1000
            self._idle_timeout_cache = None
        if quic.ack_delay_exponent is not None:
            self._remote_ack_delay_exponent = quic.ack_delay_exponent
        if quic.max_ack_delay is not None:
            self._recovery.max_ack_delay = quic.max_ack_delay / 1000
        self._remote_max_datagram_frame_size = quic.max_datagram_frame_size
        self.streams.set_peer_limits(
            max_data=quic.initial_max_data or 0,
            max_stream_data_bidi_local=quic.initial_max_stream_data_bidi_local or 0,
            max_stream_data_bidi_remote=quic.initial_max_stream_data_bidi_remote or 0,
            max_stream_data_uni=quic.initial_max_stream_data_uni or 0,
            max_streams_bidi=quic.initial_max_streams_bidi or 0,
            max_streams_uni=quic.initial_max_streams_uni or 0,
        )
        cids.peer_cid_limit = quic.active_connection_id_limit or 2
        if params.initial_max_path_id is not None and self._max_path_id is not None:
            self._multipath = True
            self._remote_max_path_id = params.initial_max_path_id
        if quic.max_udp_payload_size:
            self._max_datagram_size = min(
                self.settings.max_datagram_size, quic.max_udp_payload_size
            )

    def _on_handshake_complete(self) -> None:
        self._handshake_complete = True
        if not self._is_client:
            self._handshake_done_pending = True
            self._confirm_handshake()
        # Peer CID seq 0 is the one from the handshake.
        self.cids.peer_cids[0][0] = self.cids.peer_cid
        if self._is_client:
            # Our spare and per-path CIDs follow one timer turn later, right after the
            # Finished flight: issuing and announcing them (~18 frames) inside it delayed the
            # client's Finished and the wake-up of the task awaiting the handshake.
            self._cids_due = True
        else:
            self.cids.issue()
        self._setup_multipath()
        self._events.append(
            events.HandshakeCompleted(
                alpn_protocol=self.tls.alpn_negotiated,
                early_data_accepted=False,
                session_resumed=False,
            )
        )

    def _confirm_handshake(self) -> None:
        if self._handshake_confirmed:
            return
        self._handshake_confirmed = True
        self._recovery.handshake_confirmed = True
        self._recovery.peer_completed_address_validation = True
        self._discard_level(INITIAL)
        self._discard_level(HANDSHAKE)

    # -- frame handlers (table below) ------------------------------------------------------

    def _on_handshake_done(self, level: int, frame: HandshakeDoneFrame, now: float) -> None:
        self._confirm_handshake()

    def _on_close_frame(self, level: int, frame: ConnectionCloseFrame, now: float) -> None:
        if self._close_event is None or self._close_pending:
            self._close_event = events.ConnectionTerminated(
                error_code=frame.error_code,
                frame_type=frame.frame_type,
                reason_phrase=frame.reason.decode("utf-8", "replace"),
            )
        self._close_pending = False
        self._enter_close(now, draining=True)

    def _on_datagram(self, level: int, frame: DatagramFrame, now: float) -> None:
        if len(frame.data) > self.settings.max_datagram_frame_size:
            raise QuicProtocolViolation(
                "DATAGRAM too large", code=PROTOCOL_VIOLATION, frame_type=FrameType.DATAGRAM
            )
        self._events.append(events.DatagramFrameReceived(data=frame.data))

    def _on_new_cid(self, level: int, frame: NewConnectionIdFrame, now: float) -> None:
        self.cids.on_new_cid(
            frame, self._local_max_path_id, lambda path_id: self._on_path_new_cid(path_id, now)
        )

    def _on_retire_cid(self, level: int, frame: RetireConnectionIdFrame, now: float) -> None:
        if frame.path_id:
            path = self._paths.get(frame.path_id)
            reissue = path is None or not path.abandoned
            self.cids.on_retire_path(frame.path_id, frame.sequence, reissue=reissue)
        else:
            self.cids.on_retire(frame.sequence)

    def _on_immediate_ack(self, level: int, frame: ImmediateAckFrame, now: float) -> None:
        self._spaces[level].ack_at = now

    def _ignore(self, level: int, frame: Any, now: float) -> None:
        """Frames we accept without acting on them (M2: other paths are never used)."""

    # -- after the handshake ---------------------------------------------------------------

    def _setup_multipath(self) -> None:
        """After the handshake: issue CIDs for further path ids and start NAT traversal."""
        if not self._multipath:
            return
        path0 = self._path0
        path0.idle_at = self._now + self.path_idle_timeout(path0.addr)
        path0.keepalive_at = self._now + self.path_keep_alive
        self._issue_path_cids()
        self._start_nat_traversal()

    # -- sending ---------------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """Build what is due now; returns ``[(datagram, addr)]`` (addr: where to send)."""
        if self._terminated or self._path0.addr is None or not self.cids.peer_cid:
            return []
        out: list[tuple[bytes, Any]] = []
        if self._close_pending or self._closing:
            if self._close_pending:
                path = self._data_path() or self._path0
                if path.addr is not None:
                    self._send_on_path(path, now, out, closing=True)
                self._enter_close(now, draining=False)
            return out
        if len(self._paths) == 1 and not self._offpath and self._nat is None:
            # The one-path case: as cheap as before multipath.
            self._send_on_path(self._path0, now, out, carry_data=True)
            return out
        self._send_off_path(now, out)
        data_path = self._data_path()
        for path in list(self._paths.values()):
            if path.abandoned or path.addr is None:
                continue
            if path is not self._path0 and not path.peer_cid:
                continue
            self._send_on_path(path, now, out, carry_data=path is data_path)
        return out


def _has_close_frame(payload: bytes, packet_type: int, is_client: bool, multipath: bool) -> bool:
    """True if ``payload`` holds a CONNECTION_CLOSE (frames before it must decode)."""
    buf = Buffer(data=payload)
    end = len(payload)
    role: Literal["client", "server"] = "client" if is_client else "server"
    try:
        while buf.tell() < end:
            frame_type = pull_frame_type(buf)
            if frame_type in (FrameType.CONNECTION_CLOSE, FrameType.APPLICATION_CLOSE):
                return True
            pull_frame(buf, frame_type, packet_type, role=role, multipath=multipath, qnt=True)
    except (QuicProtocolViolation, ValueError):
        return False
    return False


_HANDLERS: Final[dict[type, Callable[[IrohConnection, int, Any, float], None]]] = {
    PingFrame: IrohConnection._ignore,
    CryptoFrame: IrohConnection._on_crypto,
    ResetStreamFrame: lambda c, lvl, f, now: c.streams.on_reset_stream(f),
    StopSendingFrame: lambda c, lvl, f, now: c.streams.on_stop_sending(f),
    MaxDataFrame: lambda c, lvl, f, now: c.streams.on_max_data(f),
    MaxStreamDataFrame: lambda c, lvl, f, now: c.streams.on_max_stream_data(f),
    MaxStreamsFrame: lambda c, lvl, f, now: c.streams.on_max_streams(f),
    DataBlockedFrame: IrohConnection._ignore,
    StreamDataBlockedFrame: IrohConnection._ignore,
    StreamsBlockedFrame: IrohConnection._ignore,
    NewTokenFrame: IrohConnection._ignore,
    NewConnectionIdFrame: IrohConnection._on_new_cid,
    RetireConnectionIdFrame: IrohConnection._on_retire_cid,
    PathChallengeFrame: IrohConnection._on_path_challenge,
    PathResponseFrame: IrohConnection._on_path_response,
    ConnectionCloseFrame: IrohConnection._on_close_frame,
    HandshakeDoneFrame: IrohConnection._on_handshake_done,
    DatagramFrame: IrohConnection._on_datagram,
    AckFrequencyFrame: IrohConnection._ignore,
    ImmediateAckFrame: IrohConnection._on_immediate_ack,
    PathAbandonFrame: IrohConnection._on_path_abandon,
    AddAddressFrame: IrohConnection._on_add_address,
    RemoveAddressFrame: IrohConnection._on_remove_address,
    ReachOutFrame: IrohConnection._on_reach_out,
    PathStatusFrame: IrohConnection._ignore,
    MaxPathIdFrame: IrohConnection._on_max_path_id,
    PathsBlockedFrame: IrohConnection._on_paths_blocked,
    PathCidsBlockedFrame: IrohConnection._on_path_cids_blocked,
}


def new_connection(**kwargs: Any) -> IrohConnection | IrohQuicConnection:
    """Build the engine chosen by ``$AIOIROH_ENGINE`` (``native`` default, or ``aioquic``).

    Takes the :class:`IrohQuicConnection` constructor's keyword arguments.
    """
    if os.environ.get(ENGINE_ENV, "native") == "aioquic":
        return IrohQuicConnection(**kwargs)
    return IrohConnection(**kwargs)
