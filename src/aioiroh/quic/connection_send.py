"""Packet assembly of the native engine: what goes into each datagram, and delivery callbacks.

Owns :class:`SendLayer`: building a path's packets (long-header handshake packets through
aioquic's builder, 1-RTT ones through :class:`~.packet_writer.ShortPacketWriter`), the order
frames are written in (ACK, path frames, HANDSHAKE_DONE, CIDs, control, PINGs, CRYPTO,
DATAGRAM, then streams, with a bulk loop once only stream data is left), CONNECTION_CLOSE, and
the callbacks that requeue a lost frame or report an acknowledged PING.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from aioquic import tls
from aioquic.quic import events
from aioquic.quic.packet import QuicPacketType
from aioquic.quic.packet_builder import (
    QuicDeliveryState,
    QuicPacketBuilder,
    QuicPacketBuilderStop,
    QuicSentPacket,
)
from aioquic.quic.recovery import QuicPacketSpace

from ._aioquic import push_ack_frame, size_uint_var
from .connection_paths import PathsLayer
from .connection_state import (
    ACK_DELAY_EXPONENT,
    ACK_FRAME_CAPACITY,
    APP,
    APPLICATION_ERROR,
    HANDSHAKE,
    INITIAL,
    MAX_PACKETS_PER_POLL,
    PACKET_TYPE,
    QUIC_V1,
    Level,
)
from .frames import (
    AddAddressFrame,
    Frame,
    FrameType,
    MaxPathIdFrame,
    PathAbandonFrame,
    PathCidsBlockedFrame,
    PathsBlockedFrame,
    PathStatusFrame,
    ReachOutFrame,
    RemoveAddressFrame,
    frame_size,
    push_frame,
)
from .packet_writer import PacketSink, SentPacket, ShortPacketWriter
from .paths import MIN_CHALLENGE_INTERVAL, PathState


class SendLayer(PathsLayer):
    """Sending methods of the engine."""

    def _send_on_path(
        self,
        path: PathState,
        now: float,
        out: list[tuple[bytes, Any]],
        *,
        carry_data: bool = False,
        closing: bool = False,
    ) -> None:
        is0 = path is self._path0
        peer_cid = self.cids.peer_cid if is0 else path.peer_cid
        general: QuicPacketBuilder | None = None
        builder: PacketSink
        if closing or (is0 and not self._handshake_confirmed):
            # Long headers (coalesced) or CONNECTION_CLOSE: aioquic's general builder.
            builder = general = QuicPacketBuilder(
                host_cid=self.host_cid,
                peer_cid=peer_cid,
                peer_token=self._retry_token,
                version=QUIC_V1,
                is_client=self._is_client,
                max_datagram_size=self._max_datagram_size,
                packet_number=path.pn,
            )
        else:
            # Only 1-RTT packets from here on: the lean writer.
            builder = ShortPacketWriter(
                peer_cid=peer_cid,
                max_datagram_size=self._max_datagram_size,
                packet_number=path.pn,
                largest_acked=path.space.largest_acked_packet,
                sent_time=now,
            )
        if general is not None and closing:
            self._write_close(general, path.path_id)
        else:
            rec = path.recovery
            builder.max_flight_bytes = rec.congestion_window - rec.bytes_in_flight
            if path.probe_pending and builder.max_flight_bytes < self._max_datagram_size:
                builder.max_flight_bytes = self._max_datagram_size
            if is0 and not self._address_validated:
                builder.max_total_bytes = max(0, 3 * self._bytes_received - self._bytes_sent)
            elif not path.validated and not self._is_client:
                # A server must not amplify towards an address the client has not proven.
                builder.max_total_bytes = path.amplification_budget()
            try:
                if general is not None:
                    self._write_handshake(general, INITIAL, now)
                    self._write_handshake(general, HANDSHAKE, now)
                if carry_data:
                    self._write_application(builder, now, path)
                else:
                    self._write_path_only(builder, now, path)
            except QuicPacketBuilderStop:
                pass
        datagrams, packets = builder.flush()
        path.pn = builder.packet_number
        eliciting = False
        on_packet_sent = path.recovery.on_packet_sent
        for packet in packets:
            packet.sent_time = now
            if general is None:
                space = path.space  # the 1-RTT writer: this path's application space
            elif is0:
                space = self._spaces[level_of_packet(packet)]
            else:
                space = path.space
            if space.discarded:
                continue
            on_packet_sent(packet=packet, space=space)  # type: ignore[arg-type]
            if packet.is_ack_eliciting:
                eliciting = True
        if eliciting and not self._eliciting_since_receive:
            # RFC 9000 §10.1: sending restarts the idle timer once per receive.
            self._eliciting_since_receive = True
            self._idle_at = now + self._idle_timeout()
        if eliciting and path.keepalive_at is not None:
            path.keepalive_at = now + self.path_keep_alive
        addr = path.addr
        sent = 0
        for datagram in datagrams:
            sent += len(datagram)
            out.append((datagram, addr))
        if is0:
            self._bytes_sent += sent
        path.datagrams_sent += len(datagrams)
        path.bytes_sent += sent

    def _write_close(self, builder: QuicPacketBuilder, path_id: int = 0) -> None:
        event = self._close_event
        assert event is not None
        levels = [APP] if self._handshake_confirmed else [INITIAL, HANDSHAKE, APP]
        for level in levels:
            seal = self._levels[level].seal if level != APP else self._seal_for(path_id)
            if seal is None:
                continue
            code, frame_type, reason = event.error_code, event.frame_type, event.reason_phrase
            if level != APP and frame_type is None:
                # An application close must not leak before 1-RTT (RFC 9000 §10.2.3).
                code, frame_type, reason = APPLICATION_ERROR, 0, ""
            if level == APP and not self._handshake_complete and frame_type is None:
                code, frame_type, reason = APPLICATION_ERROR, 0, ""
            reason_bytes = reason.encode("utf-8")[:512]
            try:
                builder.start_packet(PACKET_TYPE[level], seal)  # type: ignore[arg-type]
                buf = builder.start_frame(
                    FrameType.CONNECTION_CLOSE
                    if frame_type is not None
                    else FrameType.APPLICATION_CLOSE,
                    capacity=32 + len(reason_bytes),
                )
            except QuicPacketBuilderStop:
                return
            buf.push_uint_var(code)
            if frame_type is not None:
                buf.push_uint_var(frame_type)
            buf.push_uint_var(len(reason_bytes))
            buf.push_bytes(reason_bytes)

    def _write_ack(
        self, builder: PacketSink, level: int, now: float, path: PathState | None = None
    ) -> None:
        path = path or self._path0
        space = path.space if level == APP else self._spaces[level]
        delay = 0.0
        if space.largest_received_time is not None:
            delay = max(0.0, now - space.largest_received_time)
        encoded = int(delay * 1_000_000) >> ACK_DELAY_EXPONENT
        path_ack = level == APP and self._multipath
        buf = builder.start_frame(
            FrameType.ACK,
            capacity=ACK_FRAME_CAPACITY + (6 if path_ack else 0),
            handler=_on_ack_delivery,
            handler_args=(space, space.largest_received_packet),
        )
        if path_ack:
            # Written like an ACK (not ack-eliciting, not in flight), then retyped as
            # PATH_ACK for path 0 (design notes §1.3): both types are one-byte varints.
            buf.seek(buf.tell() - 1)
            buf.push_uint_var(FrameType.PATH_ACK)
            buf.push_uint_var(path.path_id)
        push_ack_frame(buf, space.ack_queue, encoded, builder.remaining_buffer_space)
        space.ack_at = None
        if level == APP:
            path.unacked_eliciting = 0
            self.sent_ack_types.add(FrameType.PATH_ACK if path_ack else FrameType.ACK)

    def _write_handshake(self, builder: QuicPacketBuilder, level: int, now: float) -> None:
        lv = self._levels[level]
        space = self._spaces[level]
        if lv.seal is None or space.discarded:
            return
        while True:
            builder.start_packet(PACKET_TYPE[level], lv.seal)  # type: ignore[arg-type]
            if space.ack_at is not None:
                self._write_ack(builder, level, now)
            sender = lv.crypto.sender
            if not sender.buffer_is_empty:
                self._write_crypto(builder, lv)
                self._path0.probe_pending = False
            if (
                self._path0.probe_pending
                and not self._handshake_complete
                and (level == HANDSHAKE or self._levels[HANDSHAKE].seal is None)
            ):
                builder.start_frame(FrameType.PING)
                self._path0.probe_pending = False
            if builder.packet_is_empty:
                break

    def _write_crypto(self, builder: PacketSink, lv: Level) -> None:
        sender = lv.crypto.sender
        frame = sender.get_frame(builder.remaining_flight_space - 18)
        if frame is None:
            return
        buf = builder.start_frame(
            FrameType.CRYPTO,
            capacity=18,
            handler=sender.on_data_delivery,
            handler_args=(frame.offset, frame.offset + len(frame.data), False),
        )
        buf.push_uint_var(frame.offset)
        buf.push_uint16(len(frame.data) | 0x4000)
        buf.push_bytes(frame.data)

    def _write_application(self, builder: PacketSink, now: float, path: PathState) -> None:
        lv = self._levels[APP]
        seal = self._seal_for(path.path_id)
        if seal is None:
            return
        space = path.space
        streams = self.streams
        cids = self.cids
        budget = MAX_PACKETS_PER_POLL
        self._pacing_at = None
        while True:
            if budget == 0:
                # Let the driver read (and process ACKs) before the next burst.
                self._pacing_at = now
                return
            budget -= 1
            builder.start_packet(QuicPacketType.ONE_RTT, seal)  # type: ignore[arg-type]
            if space.ack_at is not None and (space.ack_at <= now or streams.has_pending):
                self._write_ack(builder, APP, now, path)
            if path.path_id or path.challenge_at is not None:
                self._write_path_frames(builder, now, path)
            if self._handshake_complete:
                if self._handshake_done_pending:
                    builder.start_frame(
                        FrameType.HANDSHAKE_DONE, handler=self._on_handshake_done_delivery
                    )
                    self._handshake_done_pending = False
                while self._path_responses:
                    buf = builder.start_frame(FrameType.PATH_RESPONSE, capacity=9)
                    buf.push_bytes(self._path_responses.popleft())
                if cids.to_announce:
                    cids.write_announcements(builder, self._multipath)
                while self._ctrl:
                    put_frame(builder, self._ctrl[0], self._on_ctrl_delivery)
                    self._ctrl.popleft()
                if cids.to_retire:
                    cids.write_retires(builder, self._multipath)
            if self._pings:
                builder.start_frame(
                    FrameType.PING,
                    handler=self._on_ping_delivery,
                    handler_args=(tuple(self._pings),),
                )
                self._pings.clear()
            if path.probe_pending or path.ping_pending:
                builder.start_frame(FrameType.PING)
                path.probe_pending = path.ping_pending = False
            if not lv.crypto.sender.buffer_is_empty:
                self._write_crypto(builder, lv)
            while self._datagrams:
                data = self._datagrams[0]
                buf = builder.start_frame(FrameType.DATAGRAM_WITH_LENGTH, capacity=9 + len(data))
                buf.push_uint_var(len(data))
                buf.push_bytes(data)
                self._datagrams.popleft()
            if self._handshake_complete and streams.has_pending:
                streams.write_frames(builder)
            if builder.packet_is_empty:
                return
            if self._only_stream_data_left(path, now):
                break
        # Bulk: nothing but stream data is left, and nothing else can be queued while we
        # write (ACKs, control frames and probes are queued on receive and on timers), so the
        # remaining packets skip the checks above.
        while streams.has_pending:
            if budget == 0:
                self._pacing_at = now
                return
            budget -= 1
            builder.start_packet(QuicPacketType.ONE_RTT, seal)  # type: ignore[arg-type]
            streams.write_frames(builder)
            if builder.packet_is_empty:
                return

    def _only_stream_data_left(self, path: PathState, now: float) -> bool:
        """Whether _write_application's next packet could hold nothing but stream frames."""
        return (
            self._handshake_complete
            and path.space.ack_at is None
            and not path.responses
            and (path.challenge_at is None or now < path.challenge_at or path.validated)
            and not self._handshake_done_pending
            and not self._path_responses
            and not self.cids.to_announce
            and not self._ctrl
            and not self.cids.to_retire
            and not self._pings
            and not path.probe_pending
            and not path.ping_pending
            and self._levels[APP].crypto.sender.buffer_is_empty
            and not self._datagrams
        )

    def _write_path_frames(self, builder: PacketSink, now: float, path: PathState) -> None:
        """This path's own PATH_RESPONSEs and (due) PATH_CHALLENGE; a challenge pads."""
        while path.responses:
            builder.start_frame(FrameType.PATH_RESPONSE, capacity=9).push_bytes(path.responses[0])
            path.responses.pop(0)
        if path.challenge_at is not None and now >= path.challenge_at and not path.validated:
            if path.challenge is None:
                path.challenge = self._random(8)
            builder.start_frame(FrameType.PATH_CHALLENGE, capacity=9).push_bytes(path.challenge)
            path.challenge_tries += 1
            interval = max(MIN_CHALLENGE_INTERVAL, path.recovery.get_probe_timeout())
            path.challenge_at = now + interval
            pad(builder)

    def _write_path_only(self, builder: PacketSink, now: float, path: PathState) -> None:
        """A path that carries no data: its ACKs, validation and keep-alive only."""
        seal = self._seal_for(path.path_id)
        if seal is None or not self._handshake_complete:
            return
        space = path.space
        challenge_due = path.challenge_at is not None and now >= path.challenge_at
        ping = path.probe_pending or path.ping_pending
        ack_due = space.ack_at is not None and space.ack_at <= now
        if not (ack_due or challenge_due or ping or path.responses):
            return
        builder.start_packet(QuicPacketType.ONE_RTT, seal)  # type: ignore[arg-type]
        if space.ack_at is not None:
            self._write_ack(builder, APP, now, path)
        self._write_path_frames(builder, now, path)
        if ping:
            builder.start_frame(FrameType.PING)
            path.probe_pending = path.ping_pending = False

    def _on_handshake_done_delivery(self, delivery: QuicDeliveryState) -> None:
        if delivery != QuicDeliveryState.ACKED and not self._closing:
            self._handshake_done_pending = True

    def _on_ctrl_delivery(self, delivery: QuicDeliveryState, frame: Frame) -> None:
        if delivery != QuicDeliveryState.ACKED and not self._closing and self._still_blocked(frame):
            self._queue_ctrl(frame)

    def _on_ping_delivery(self, delivery: QuicDeliveryState, uids: tuple[int, ...]) -> None:
        if delivery == QuicDeliveryState.ACKED:
            for uid in uids:
                self._events.append(events.PingAcknowledged(uid=uid))
        else:
            self._pings.extend(uids)


def pad(builder: PacketSink) -> None:
    """Fill the rest of the packet with PADDING (path validation wants 1200-byte datagrams)."""
    room = min(builder.remaining_buffer_space, builder.remaining_flight_space)
    if room > 1:
        builder.start_frame(FrameType.PADDING, capacity=room).push_bytes(bytes(room - 1))


def put_frame(
    builder: PacketSink, frame: Frame, handler: Callable[..., None] | None = None
) -> None:
    """Write any codec frame through the builder, with a delivery handler getting it back."""
    size = frame_size(frame)
    frame_type = _frame_type_of(frame)
    buf = builder.start_frame(
        frame_type,
        capacity=size - size_uint_var(frame_type),
        handler=handler,
        handler_args=(frame,),
    )
    buf.seek(buf.tell() - size_uint_var(frame_type))
    push_frame(buf, frame)


def _frame_type_of(frame: Frame) -> int:
    if isinstance(frame, PathStatusFrame):
        return FrameType.PATH_STATUS_AVAILABLE if frame.available else FrameType.PATH_STATUS_BACKUP
    if isinstance(frame, PathAbandonFrame):
        return FrameType.PATH_ABANDON
    if isinstance(frame, MaxPathIdFrame):
        return FrameType.MAX_PATH_ID
    if isinstance(frame, PathsBlockedFrame):
        return FrameType.PATHS_BLOCKED
    if isinstance(frame, PathCidsBlockedFrame):
        return FrameType.PATH_CIDS_BLOCKED
    if isinstance(frame, RemoveAddressFrame):
        return FrameType.REMOVE_ADDRESS
    ipv6 = ip_address(frame.ip).version == 6  # type: ignore[union-attr]
    if isinstance(frame, AddAddressFrame):
        return FrameType.ADD_IPV6_ADDRESS if ipv6 else FrameType.ADD_IPV4_ADDRESS
    if isinstance(frame, ReachOutFrame):
        return FrameType.REACH_OUT_IPV6 if ipv6 else FrameType.REACH_OUT_IPV4
    raise ValueError(f"no control frame type for {frame!r}")


def _on_ack_delivery(delivery: QuicDeliveryState, space: QuicPacketSpace, largest: int) -> None:
    if delivery == QuicDeliveryState.ACKED and largest >= 0:
        # The peer saw these ranges: stop repeating them.
        space.ack_queue.subtract(0, largest + 1)


def level_of_packet(packet: QuicSentPacket | SentPacket) -> int:
    epoch = packet.epoch
    if epoch is tls.Epoch.ONE_RTT:
        return APP
    return INITIAL if epoch is tls.Epoch.INITIAL else HANDSHAKE
