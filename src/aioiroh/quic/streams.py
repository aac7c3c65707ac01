"""Stream table and flow control for the native QUIC engine (RFC 9000 §2-4), sans-I/O.

Streams belong to the connection, not to a path (multipath draft), so this module knows nothing
about paths: frames come in from any packet, and :meth:`StreamManager.write_frames` fills
whatever packet the connection is building. Per-stream send/receive buffers are aioquic's
``QuicStream`` unchanged; what aioquic keeps inside its monolithic connection (stream limits,
connection- and stream-level windows, discarding finished streams) lives here.

Receive credit follows consumption (RFC 9000 §4.2): MAX_STREAM_DATA / MAX_DATA grant ``window``
bytes beyond what the application has *read* (:meth:`StreamManager.consume`), once half of the
previous grant is used, so a reader that stops reading stops the sender after one window; data
buffered for a stream or a connection never exceeds its window. Windows are auto-tuned towards
the path's bandwidth-delay product: when a grant was used up within two RTTs the sender was held
back by the window, so the window doubles, up to a cap. Stream ids we open are allocated here
too (:meth:`StreamManager.open`), only within the peer's MAX_STREAMS; the peer's streams count
against our MAX_STREAMS until the application released them (:meth:`StreamManager.release`) and
they are finished, and only then leave the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aioquic.quic import events
from aioquic.quic.packet import QuicStreamFrame
from aioquic.quic.packet_builder import QuicDeliveryState
from aioquic.quic.stream import FinalSizeError, QuicStream

from ..errors import StreamError
from .frames import (
    FrameType,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    QuicProtocolViolation,
    ResetStreamFrame,
    StopSendingFrame,
    StreamFrame,
)
from .packet_writer import PacketSink

__all__ = ["Stream", "StreamManager"]

FLOW_CONTROL_ERROR: Final = 0x03
STREAM_LIMIT_ERROR: Final = 0x04
STREAM_STATE_ERROR: Final = 0x05
FINAL_SIZE_ERROR: Final = 0x06
MAX_STREAM_COUNT: Final = 2**60
# Worst-case sizes of the frames written here, used as builder capacities.
_LIMIT_FRAME_CAPACITY: Final = 1 + 8
_STREAM_LIMIT_FRAME_CAPACITY: Final = 1 + 8 + 8
_RESET_FRAME_CAPACITY: Final = 1 + 8 + 8 + 8
_STREAM_FRAME_OVERHEAD: Final = 1 + 8 + 8 + 2
WINDOW_GROWTH_CAP: Final = 4
"""Auto-tuning grows a receive window to at most this many times its initial size."""
_MIN_RTT_FOR_TUNING: Final = 0.001


def is_local(stream_id: int, is_client: bool) -> bool:
    """Whether ``stream_id`` was opened by us (bit 0 is the initiator, RFC 9000 §2.1)."""
    return (stream_id & 1) == (0 if is_client else 1)


def is_uni(stream_id: int) -> bool:
    """Whether ``stream_id`` is unidirectional (bit 1)."""
    return bool(stream_id & 2)


class _Limit:
    """A credit we grant (MAX_DATA / MAX_STREAMS): current value and the value last sent."""

    __slots__ = ("sent", "value")

    def __init__(self, value: int) -> None:
        self.value = value
        self.sent = value


class Stream(QuicStream):
    """aioquic's stream plus receive accounting: what the application read, the window."""

    def __init__(
        self,
        *,
        stream_id: int,
        max_stream_data_local: int,
        max_stream_data_remote: int,
        readable: bool,
        writable: bool,
    ) -> None:
        super().__init__(
            stream_id=stream_id,
            max_stream_data_local=max_stream_data_local,
            max_stream_data_remote=max_stream_data_remote,
            readable=readable,
            writable=writable,
        )
        self.consumed = 0
        """Bytes of the receive side the application has read (or that were discarded)."""
        self.window = max_stream_data_local
        """Receive window: credit granted beyond ``consumed``."""
        self.window_at: float | None = None
        """When the last MAX_STREAM_DATA was granted (auto-tuning)."""
        self.released = not readable
        """The application is done with the receive side: arriving data is credited at once."""


class StreamManager:
    """All streams of one connection plus connection-level flow control in both directions."""

    def __init__(
        self,
        *,
        is_client: bool,
        max_data: int,
        max_stream_data: int,
        max_streams_bidi: int,
        max_streams_uni: int,
        emit: Callable[[events.QuicEvent], None],
    ) -> None:
        """``max_*`` are the windows and stream counts we grant the peer."""
        self.is_client = is_client
        self._emit = emit
        self.streams: dict[int, Stream] = {}
        # Streams with something to send, in service order (served ones go to the back).
        self._queue: list[Stream] = []
        # Receive side: what we grant.
        self._data_window = max_data
        self._stream_window = max_stream_data
        self._max_data_window = max_data * WINDOW_GROWTH_CAP
        self._max_stream_window = max_stream_data * WINDOW_GROWTH_CAP
        self._data_window_at: float | None = None
        self._local_max_data = _Limit(max_data)
        self._data_received = 0
        # Bytes the application has read (or that were discarded), over all streams.
        self._data_consumed = 0
        self._local_max_streams = {False: _Limit(max_streams_bidi), True: _Limit(max_streams_uni)}
        self._initial_max_streams = {False: max_streams_bidi, True: max_streams_uni}
        # Number of peer streams of each type opened so far (highest index + 1).
        self._peer_opened = {False: 0, True: 0}
        # Send side: what the peer grants (set from its transport parameters).
        self.remote_max_data = 0
        self._data_sent = 0
        self._remote_max_streams = {False: 0, True: 0}
        self._remote_stream_data_bidi_local = 0
        self._remote_stream_data_bidi_remote = 0
        self._remote_stream_data_uni = 0
        # Highest local stream index created per type (+1), to recognise discarded streams.
        self._local_opened = {False: 0, True: 0}
        self._blocked: dict[bool, list[Stream]] = {False: [], True: []}
        self._pending_limits = False

    # -- peer parameters -------------------------------------------------------------------

    def set_peer_limits(
        self,
        *,
        max_data: int,
        max_stream_data_bidi_local: int,
        max_stream_data_bidi_remote: int,
        max_stream_data_uni: int,
        max_streams_bidi: int,
        max_streams_uni: int,
    ) -> None:
        """Apply the peer's initial_max_* transport parameters."""
        self.remote_max_data = max_data
        self._remote_stream_data_bidi_local = max_stream_data_bidi_local
        self._remote_stream_data_bidi_remote = max_stream_data_bidi_remote
        self._remote_stream_data_uni = max_stream_data_uni
        for stream in self.streams.values():
            # Streams created before the parameters arrived (0-RTT-style writes).
            stream.max_stream_data_remote = self._send_window_for(_sid(stream))
        self._raise_remote_streams(False, max_streams_bidi)
        self._raise_remote_streams(True, max_streams_uni)

    def _send_window_for(self, stream_id: int) -> int:
        if is_uni(stream_id):
            return self._remote_stream_data_uni if is_local(stream_id, self.is_client) else 0
        # The peer's bidi_remote applies to streams we opened, bidi_local to its own.
        if is_local(stream_id, self.is_client):
            return self._remote_stream_data_bidi_remote
        return self._remote_stream_data_bidi_local

    def _raise_remote_streams(self, uni: bool, maximum: int) -> None:
        if maximum <= self._remote_max_streams[uni]:
            return
        self._remote_max_streams[uni] = maximum
        still = []
        for stream in self._blocked[uni]:
            if _sid(stream) // 4 < maximum:
                stream.is_blocked = False
                self._enqueue(stream)
            else:
                still.append(stream)
        self._blocked[uni] = still

    # -- local API -------------------------------------------------------------------------

    def open(self, uni: bool) -> int | None:
        """Open our next stream of a type; None while the peer's MAX_STREAMS allows no more."""
        index = self._local_opened[uni]
        if index >= self._remote_max_streams[uni]:
            return None
        sid = index * 4 + (2 if uni else 0) + (0 if self.is_client else 1)
        self.get_for_send(sid)
        return sid

    def can_open(self, uni: bool) -> bool:
        """Whether :meth:`open` would return a stream id now."""
        return self._local_opened[uni] < self._remote_max_streams[uni]

    def next_stream_id(self, uni: bool) -> int:
        """Open our next stream even beyond the peer's credit (sent once credit comes).

        For protocol layers that need an id synchronously (aioquic's HTTP/3).
        """
        sid = self._local_opened[uni] * 4 + (2 if uni else 0) + (0 if self.is_client else 1)
        self.get_for_send(sid)
        return sid

    def get_for_send(self, stream_id: int) -> Stream:
        """The stream to write on, creating a local one; :class:`StreamError` if we cannot."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            if is_uni(stream_id) and not is_local(stream_id, self.is_client):
                raise StreamError("cannot send on a peer's unidirectional stream")
            return stream
        if not 0 <= stream_id < 2**62:
            raise StreamError(f"invalid stream id {stream_id}")
        uni = is_uni(stream_id)
        if not is_local(stream_id, self.is_client):
            if uni:
                raise StreamError("cannot send on a peer's unidirectional stream")
            if stream_id // 4 < self._peer_opened[uni]:
                raise StreamError(f"stream {stream_id} is closed")
            return self._open_peer(stream_id)
        if stream_id // 4 < self._local_opened[uni]:
            raise StreamError(f"stream {stream_id} is closed")
        # Opening a stream opens every lower one of its type (RFC 9000 §3.2).
        for index in range(self._local_opened[uni], stream_id // 4 + 1):
            sid = index * 4 + (stream_id & 3)
            stream = Stream(
                stream_id=sid,
                max_stream_data_local=0 if uni else self._stream_window,
                max_stream_data_remote=self._send_window_for(sid),
                readable=not uni,
                writable=True,
            )
            self.streams[sid] = stream
            if index >= self._remote_max_streams[uni]:
                stream.is_blocked = True
                self._blocked[uni].append(stream)
        self._local_opened[uni] = stream_id // 4 + 1
        return self.streams[stream_id]

    def send(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue stream data (``ValueError`` for a stream we cannot write)."""
        stream = self.get_for_send(stream_id)
        stream.sender.write(data, end_stream=end_stream)
        if not stream.is_blocked:
            self._enqueue(stream)

    def reset(self, stream_id: int, error_code: int) -> None:
        """Abort the sending side (RESET_STREAM)."""
        stream = self.get_for_send(stream_id)
        stream.sender.reset(error_code)
        self._enqueue(stream)

    def stop(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending (STOP_SENDING) and release the receive side.

        :class:`StreamError` if the stream is unknown or send-only.
        """
        stream = self.streams.get(stream_id)
        if stream is None or (is_uni(stream_id) and is_local(stream_id, self.is_client)):
            raise StreamError("no receiving stream with this id")
        if not stream.receiver.is_finished:
            stream.receiver.stop(error_code)
            self._enqueue(stream)
        self.release(stream_id)

    def consume(self, stream_id: int, n: int, now: float, rtt: float | None) -> None:
        """The application read ``n`` bytes of a stream: grant credit for them.

        Reading up to the final size releases the stream (see :meth:`release`).
        """
        stream = self.streams.get(stream_id)
        if stream is None or stream.released or n <= 0:
            return
        receiver = stream.receiver
        n = min(n, receiver.highest_offset - stream.consumed)
        stream.consumed += n
        self._data_consumed += n
        final = receiver._final_size
        if final is not None and stream.consumed >= final:
            self.release(stream_id)
            return
        if final is None and stream.max_stream_data_local - stream.consumed < stream.window // 2:
            stream.window = self._tuned(
                stream.window, stream.window_at, now, rtt, self._max_stream_window
            )
            stream.window_at = now
            # The connection window stays ahead of any one stream's (quiche keeps 1.5x).
            if self._data_window < stream.window * 3 // 2:
                self._data_window = min(stream.window * 3 // 2, self._max_data_window)
            stream.max_stream_data_local = stream.consumed + stream.window
            self._enqueue(stream)
        self._update_data_limit(now, rtt)

    def release(self, stream_id: int) -> None:
        """The application is done with a stream's receive side (read to the end, stopped,
        or saw its reset): unread data is credited, and the stream leaves the table once
        finished, giving the peer back one stream of credit if it opened it."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.released:
            return
        stream.released = True
        self._discard_unread(stream)
        self._update_data_limit(None, None)
        if stream.is_finished:
            self._discard(stream)

    def _discard_unread(self, stream: Stream) -> None:
        unread = stream.receiver.highest_offset - stream.consumed
        if unread > 0:
            stream.consumed += unread
            self._data_consumed += unread

    @staticmethod
    def _tuned(
        window: int, granted_at: float | None, now: float, rtt: float | None, cap: int
    ) -> int:
        # Half a window consumed within 2 RTTs of the last grant: the sender was window-limited.
        if (
            granted_at is not None
            and rtt is not None
            and now - granted_at < 2 * max(rtt, _MIN_RTT_FOR_TUNING)
        ):
            return min(window * 2, cap)
        return window

    def _update_data_limit(self, now: float | None, rtt: float | None) -> None:
        limit = self._local_max_data
        if limit.value - self._data_consumed < self._data_window // 2:
            if now is not None:
                self._data_window = self._tuned(
                    self._data_window, self._data_window_at, now, rtt, self._max_data_window
                )
                self._data_window_at = now
            limit.value = self._data_consumed + self._data_window
            self._pending_limits = True

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read by the application, over all streams."""
        return self._data_received - self._data_consumed

    def send_capacity(self, stream_id: int) -> int:
        """Bytes that can be queued on a stream now without exceeding the peer's stream window
        (the "writable" signal: a writer waits while this is 0)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return max(0, stream.max_stream_data_remote - int(sender._buffer_stop))

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender._buffer_start)

    def _enqueue(self, stream: Stream) -> None:
        if stream not in self._queue:
            self._queue.append(stream)

    # -- receiving frames ------------------------------------------------------------------

    def _open_peer(self, stream_id: int) -> Stream:
        uni = is_uni(stream_id)
        index = stream_id // 4
        if index >= self._local_max_streams[uni].value:
            raise QuicProtocolViolation("stream limit exceeded", code=STREAM_LIMIT_ERROR)
        # A peer stream opens every lower one of its type (RFC 9000 §3.2); the limit check
        # above bounds how many this creates.
        for lower in range(self._peer_opened[uni], index + 1):
            sid = lower * 4 + (stream_id & 3)
            self.streams[sid] = Stream(
                stream_id=sid,
                max_stream_data_local=self._stream_window,
                max_stream_data_remote=self._send_window_for(sid),
                readable=True,
                writable=not uni,
            )
        self._peer_opened[uni] = max(self._peer_opened[uni], index + 1)
        return self.streams[stream_id]

    def _get_for_receive(self, stream_id: int, frame_type: int) -> Stream | None:
        """The stream a received frame refers to; ``None`` if it was already discarded."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            return stream
        uni = is_uni(stream_id)
        if is_local(stream_id, self.is_client):
            if stream_id // 4 >= self._local_opened[uni]:
                raise QuicProtocolViolation(
                    "frame for a stream we never opened",
                    code=STREAM_STATE_ERROR,
                    frame_type=frame_type,
                )
            return None
        if stream_id // 4 < self._peer_opened[uni]:
            return None
        return self._open_peer(stream_id)

    def on_stream(self, frame: StreamFrame) -> None:
        """STREAM: buffer, check windows, emit StreamDataReceived."""
        self.on_stream_data(frame.stream_id, frame.offset, frame.data, frame.fin)

    def on_stream_data(self, sid: int, offset: int, data: bytes, fin: bool) -> None:
        """:meth:`on_stream` with the frame's fields (the receive hot path builds no frame)."""
        stream = self.streams.get(sid)
        if stream is None or sid & 2:
            if is_uni(sid) and is_local(sid, self.is_client):
                raise QuicProtocolViolation(
                    "STREAM on a send-only stream", code=STREAM_STATE_ERROR, frame_type=0x08
                )
            stream = self._get_for_receive(sid, 0x08)
            if stream is None:
                return
        end = offset + len(data)
        if end > stream.max_stream_data_local:
            raise QuicProtocolViolation(
                "stream flow control exceeded", code=FLOW_CONTROL_ERROR, frame_type=0x08
            )
        receiver = stream.receiver
        grown = end - receiver.highest_offset
        if grown > 0:
            if self._data_received + grown > self._local_max_data.value:
                raise QuicProtocolViolation(
                    "connection flow control exceeded", code=FLOW_CONTROL_ERROR, frame_type=0x08
                )
            self._data_received += grown
        try:
            event = receiver.handle_frame(QuicStreamFrame(data=data, fin=fin, offset=offset))
        except FinalSizeError as exc:
            raise QuicProtocolViolation(str(exc), code=FINAL_SIZE_ERROR, frame_type=0x08) from None
        if stream.released:
            # Nobody will read it (stopped or read to the end): credit it at once.
            if grown > 0:
                self._discard_unread(stream)
                self._update_data_limit(None, None)
        elif event is not None:
            self._emit(event)
        if stream.is_finished and stream.released:
            self._discard(stream)

    def on_reset_stream(self, frame: ResetStreamFrame) -> None:
        """RESET_STREAM: the peer abandoned its sending side."""
        sid = frame.stream_id
        if is_uni(sid) and is_local(sid, self.is_client):
            raise QuicProtocolViolation(
                "RESET_STREAM on a send-only stream", code=STREAM_STATE_ERROR, frame_type=0x04
            )
        stream = self._get_for_receive(sid, 0x04)
        if stream is None:
            return
        grown = frame.final_size - stream.receiver.highest_offset
        if grown > 0:
            if frame.final_size > stream.max_stream_data_local:
                raise QuicProtocolViolation(
                    "final size beyond stream flow control", code=FLOW_CONTROL_ERROR, frame_type=4
                )
            if self._data_received + grown > self._local_max_data.value:
                raise QuicProtocolViolation(
                    "final size beyond connection flow control",
                    code=FLOW_CONTROL_ERROR,
                    frame_type=0x04,
                )
            self._data_received += grown
        try:
            event = stream.receiver.handle_reset(
                final_size=frame.final_size, error_code=frame.error_code
            )
        except FinalSizeError as exc:
            raise QuicProtocolViolation(str(exc), code=FINAL_SIZE_ERROR, frame_type=0x04) from None
        if stream.released:
            self._discard_unread(stream)
            self._update_data_limit(None, None)
        elif event is not None:
            self._emit(event)
        if stream.is_finished and stream.released:
            self._discard(stream)

    def on_stop_sending(self, frame: StopSendingFrame) -> None:
        """STOP_SENDING: reset our side as asked and tell the application."""
        sid = frame.stream_id
        if is_uni(sid) and not is_local(sid, self.is_client):
            raise QuicProtocolViolation(
                "STOP_SENDING on a receive-only stream", code=STREAM_STATE_ERROR, frame_type=0x05
            )
        stream = self._get_for_receive(sid, 0x05)
        if stream is None:
            return
        self._emit(events.StopSendingReceived(error_code=frame.error_code, stream_id=sid))
        stream.sender.reset(frame.error_code)
        self._enqueue(stream)

    def on_max_data(self, frame: MaxDataFrame) -> None:
        """MAX_DATA: more connection-level send credit."""
        if frame.maximum > self.remote_max_data:
            self.remote_max_data = frame.maximum

    def on_max_stream_data(self, frame: MaxStreamDataFrame) -> None:
        """MAX_STREAM_DATA: more send credit on one stream."""
        sid = frame.stream_id
        if is_uni(sid) and not is_local(sid, self.is_client):
            raise QuicProtocolViolation(
                "MAX_STREAM_DATA on a receive-only stream",
                code=STREAM_STATE_ERROR,
                frame_type=FrameType.MAX_STREAM_DATA,
            )
        stream = self._get_for_receive(sid, FrameType.MAX_STREAM_DATA)
        if stream is not None and frame.maximum > stream.max_stream_data_remote:
            stream.max_stream_data_remote = frame.maximum
            if not stream.sender.buffer_is_empty:
                self._enqueue(stream)

    def on_max_streams(self, frame: MaxStreamsFrame) -> None:
        """MAX_STREAMS: the peer lets us open more streams."""
        if frame.maximum > MAX_STREAM_COUNT:
            raise QuicProtocolViolation(
                "MAX_STREAMS above 2^60", code=0x07, frame_type=FrameType.MAX_STREAMS_BIDI
            )
        self._raise_remote_streams(not frame.bidi, frame.maximum)

    def _discard(self, stream: Stream) -> None:
        sid = _sid(stream)
        if self.streams.pop(sid, None) is None:
            return
        self._discard_unread(stream)
        if stream.is_blocked:
            blocked = self._blocked[is_uni(sid)]
            if stream in blocked:
                blocked.remove(stream)
        if not is_local(sid, self.is_client):
            # Let the peer open one more stream of this type (RFC 9000 §4.6).
            uni = is_uni(sid)
            self._local_max_streams[uni].value += 1
            self._pending_limits = True

    # -- writing frames --------------------------------------------------------------------

    @property
    def has_pending(self) -> bool:
        """Whether :meth:`write_frames` would write something (ignoring congestion)."""
        return bool(self._queue) or self._pending_limits

    def write_frames(self, builder: PacketSink) -> None:
        """Write control frames and stream data into the current packet.

        Raises aioquic's ``QuicPacketBuilderStop`` when the packet or the congestion window is
        full; state is only changed for frames that were written.
        """
        if self._pending_limits:
            self._write_limits(builder)
        queue = self._queue
        if len(queue) == 1:
            # One stream with only data to send: the bulk case, without the round robin.
            stream = queue[0]
            if (
                not stream.receiver.stop_pending
                and stream.max_stream_data_local_sent == stream.max_stream_data_local
                and not stream.sender.reset_pending
            ):
                try:
                    if not stream.is_blocked and not stream.sender.buffer_is_empty:
                        self._write_stream(builder, stream)
                finally:
                    if stream.is_finished and stream.released:
                        self._discard(stream)
                        self._queue = []
                    elif not _has_work(stream):
                        self._queue = []
                return
        sent: set[int] = set()
        try:
            for stream in self._queue:
                sid = _sid(stream)
                if stream.receiver.stop_pending:
                    buf = builder.start_frame(
                        FrameType.STOP_SENDING,
                        capacity=_STREAM_LIMIT_FRAME_CAPACITY,
                        handler=self._on_stop_delivery,
                        handler_args=(stream,),
                    )
                    frame = stream.receiver.get_stop_frame()
                    buf.push_uint_var(sid)
                    buf.push_uint_var(frame.error_code)
                if stream.max_stream_data_local_sent != stream.max_stream_data_local:
                    buf = builder.start_frame(
                        FrameType.MAX_STREAM_DATA,
                        capacity=_STREAM_LIMIT_FRAME_CAPACITY,
                        handler=self._on_stream_limit_delivery,
                        handler_args=(stream,),
                    )
                    buf.push_uint_var(sid)
                    buf.push_uint_var(stream.max_stream_data_local)
                    stream.max_stream_data_local_sent = stream.max_stream_data_local
                sender = stream.sender
                if sender.reset_pending:
                    buf = builder.start_frame(
                        FrameType.RESET_STREAM,
                        capacity=_RESET_FRAME_CAPACITY,
                        handler=self._on_reset_delivery,
                        handler_args=(stream,),
                    )
                    reset = sender.get_reset_frame()
                    buf.push_uint_var(sid)
                    buf.push_uint_var(reset.error_code)
                    buf.push_uint_var(reset.final_size)
                elif (
                    not stream.is_blocked
                    and not sender.buffer_is_empty
                    and self._write_stream(builder, stream)
                ):
                    sent.add(sid)
        finally:
            keep: list[Stream] = []
            back: list[Stream] = []
            for stream in self._queue:
                if stream.is_finished and stream.released:
                    self._discard(stream)
                elif stream.is_finished:
                    pass  # nothing left to send; waits for the application
                elif _has_work(stream):
                    (back if _sid(stream) in sent else keep).append(stream)
            # Served streams go to the back: round robin between streams.
            keep.extend(back)
            self._queue = keep

    def _write_stream(self, builder: PacketSink, stream: Stream) -> bool:
        sender = stream.sender
        max_offset = min(
            sender.highest_offset + self.remote_max_data - self._data_sent,
            stream.max_stream_data_remote,
        )
        space = builder.remaining_flight_space - _STREAM_FRAME_OVERHEAD
        if space <= 0:
            return False
        before = sender.highest_offset
        frame = sender.get_frame(space, max_offset)
        if frame is None:
            return False
        frame_type = FrameType.STREAM_BASE | 2
        if frame.offset:
            frame_type |= 4
        if frame.fin:
            frame_type |= 1
        stop = frame.offset + len(frame.data)
        buf = builder.start_frame(
            frame_type,
            capacity=_STREAM_FRAME_OVERHEAD,
            handler=self._on_data_delivery,
            handler_args=(stream, frame.offset, stop, frame.fin),
        )
        buf.push_uint_var(_sid(stream))
        if frame.offset:
            buf.push_uint_var(frame.offset)
        buf.push_uint16(len(frame.data) | 0x4000)
        buf.push_bytes(frame.data)
        self._data_sent += sender.highest_offset - before
        return True

    def _write_limits(self, builder: PacketSink) -> None:
        limit = self._local_max_data
        if limit.value != limit.sent:
            buf = builder.start_frame(
                FrameType.MAX_DATA,
                capacity=_LIMIT_FRAME_CAPACITY,
                handler=self._on_limit_delivery,
                handler_args=(limit,),
            )
            buf.push_uint_var(limit.value)
            limit.sent = limit.value
        for uni in (False, True):
            limit = self._local_max_streams[uni]
            # Batch MAX_STREAMS: only once a quarter of the initial credit came back.
            if limit.value - limit.sent >= max(1, self._initial_max_streams[uni] // 4):
                buf = builder.start_frame(
                    FrameType.MAX_STREAMS_UNI if uni else FrameType.MAX_STREAMS_BIDI,
                    capacity=_LIMIT_FRAME_CAPACITY,
                    handler=self._on_limit_delivery,
                    handler_args=(limit,),
                )
                buf.push_uint_var(limit.value)
                limit.sent = limit.value
        self._pending_limits = False

    def _on_limit_delivery(self, delivery: QuicDeliveryState, limit: _Limit) -> None:
        if delivery != QuicDeliveryState.ACKED:
            limit.sent = 0  # resend the current value
            self._pending_limits = True

    def _on_data_delivery(
        self, delivery: QuicDeliveryState, stream: Stream, start: int, stop: int, fin: bool
    ) -> None:
        stream.sender.on_data_delivery(delivery, start, stop, fin)
        self._after_delivery(delivery, stream)

    def _on_reset_delivery(self, delivery: QuicDeliveryState, stream: Stream) -> None:
        stream.sender.on_reset_delivery(delivery)
        self._after_delivery(delivery, stream)

    def _on_stop_delivery(self, delivery: QuicDeliveryState, stream: Stream) -> None:
        stream.receiver.on_stop_sending_delivery(delivery)
        self._after_delivery(delivery, stream)

    def _after_delivery(self, delivery: QuicDeliveryState, stream: Stream) -> None:
        if delivery == QuicDeliveryState.ACKED:
            if stream.is_finished and stream.released:
                self._discard(stream)
        elif _sid(stream) in self.streams:
            self._enqueue(stream)  # lost: the sender re-marked the range as pending

    def _on_stream_limit_delivery(self, delivery: QuicDeliveryState, stream: Stream) -> None:
        if delivery != QuicDeliveryState.ACKED and _sid(stream) in self.streams:
            stream.max_stream_data_local_sent = 0
            self._enqueue(stream)


def _has_work(stream: QuicStream) -> bool:
    sender = stream.sender
    return (
        (not sender.buffer_is_empty and not stream.is_blocked)
        or sender.reset_pending
        or stream.receiver.stop_pending
        or stream.max_stream_data_local_sent != stream.max_stream_data_local
    )


def _sid(stream: QuicStream) -> int:
    # aioquic types stream_id as optional (its CRYPTO streams have none); ours always have one.
    return stream.stream_id  # type: ignore[return-value]
