"""QUIC frame codecs: RFC 9000, DATAGRAM, ACK frequency, multipath, n0 NAT traversal and QAD.

Sans-I/O. Each frame is a slotted frozen dataclass with a ``pull_<frame>(buf, frame_type)``
reader (called after the frame type varint has been read) and a ``push_<frame>(buf, frame)``
writer (which writes the type too). :func:`frame_size` gives the exact encoded length without
encoding. :func:`parse_frames` decodes a whole packet payload and enforces the placement rules
of wire doc §3.3-3.5: extension frames only in 1-RTT packets, only when negotiated, and QNT
frames only from the right role. Every failure is a :class:`QuicProtocolViolation` carrying the
QUIC transport error code to close the connection with.

Some wire frames share one class, as noq does: ``ACK``/``ACK_ECN``/``PATH_ACK``/``PATH_ACK_ECN``
are :class:`AckFrame` (``path_id`` is ``None`` for the RFC 9000 ones), ``NEW_CONNECTION_ID`` and
``PATH_NEW_CONNECTION_ID`` are :class:`NewConnectionIdFrame`, and so on.

The codecs live in three modules by family: :mod:`.frame_types` (codepoints, placement table,
errors, shared field codecs), :mod:`.core_frames` (RFC 9000 and DATAGRAM) and
:mod:`.extension_frames` (ACK frequency, multipath, QNT, QAD). This module owns the dispatch
over all of them and re-exports their names, so ``from aioiroh.quic.frames import X`` keeps
working for any frame, codec or constant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeAlias

from aioiroh.quic import core_frames, extension_frames
from aioiroh.quic._aioquic import Buffer
from aioiroh.quic.core_frames import (
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    HandshakeDoneFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
    pull_ack,
    pull_connection_close,
    pull_crypto,
    pull_data_blocked,
    pull_datagram,
    pull_handshake_done,
    pull_max_data,
    pull_max_stream_data,
    pull_max_streams,
    pull_new_connection_id,
    pull_new_token,
    pull_padding,
    pull_path_challenge,
    pull_path_response,
    pull_ping,
    pull_reset_stream,
    pull_retire_connection_id,
    pull_stop_sending,
    pull_stream,
    pull_stream_data_blocked,
    pull_streams_blocked,
    push_ack,
    push_connection_close,
    push_crypto,
    push_data_blocked,
    push_datagram,
    push_handshake_done,
    push_max_data,
    push_max_stream_data,
    push_max_streams,
    push_new_connection_id,
    push_new_token,
    push_padding,
    push_path_challenge,
    push_path_response,
    push_ping,
    push_reset_stream,
    push_retire_connection_id,
    push_stop_sending,
    push_stream,
    push_stream_data_blocked,
    push_streams_blocked,
)
from aioiroh.quic.extension_frames import (
    AckFrequencyFrame,
    AddAddressFrame,
    ImmediateAckFrame,
    MaxPathIdFrame,
    ObservedAddressFrame,
    PathAbandonFrame,
    PathCidsBlockedFrame,
    PathsBlockedFrame,
    PathStatusFrame,
    ReachOutFrame,
    RemoveAddressFrame,
    canonical_ip,
    pull_ack_frequency,
    pull_add_address,
    pull_immediate_ack,
    pull_max_path_id,
    pull_observed_address,
    pull_path_abandon,
    pull_path_cids_blocked,
    pull_path_status,
    pull_paths_blocked,
    pull_reach_out,
    pull_remove_address,
    push_ack_frequency,
    push_add_address,
    push_immediate_ack,
    push_max_path_id,
    push_observed_address,
    push_path_abandon,
    push_path_cids_blocked,
    push_path_status,
    push_paths_blocked,
    push_reach_out,
    push_remove_address,
)
from aioiroh.quic.frame_types import (
    FRAME_ENCODING_ERROR,
    FRAME_INFO,
    PACKET_0RTT,
    PACKET_1RTT,
    PACKET_HANDSHAKE,
    PACKET_INITIAL,
    PROTOCOL_VIOLATION,
    FrameEncodingError,
    FrameInfo,
    FrameType,
    QuicProtocolViolation,
    Role,
)

__all__ = [
    "FRAME_ENCODING_ERROR",
    "FRAME_INFO",
    "PACKET_0RTT",
    "PACKET_1RTT",
    "PACKET_HANDSHAKE",
    "PACKET_INITIAL",
    "PROTOCOL_VIOLATION",
    "AckFrame",
    "AckFrequencyFrame",
    "AddAddressFrame",
    "ConnectionCloseFrame",
    "CryptoFrame",
    "DataBlockedFrame",
    "DatagramFrame",
    "Frame",
    "FrameInfo",
    "FrameType",
    "HandshakeDoneFrame",
    "ImmediateAckFrame",
    "MaxDataFrame",
    "MaxPathIdFrame",
    "MaxStreamDataFrame",
    "MaxStreamsFrame",
    "NewConnectionIdFrame",
    "NewTokenFrame",
    "ObservedAddressFrame",
    "PaddingFrame",
    "PathAbandonFrame",
    "PathChallengeFrame",
    "PathCidsBlockedFrame",
    "PathResponseFrame",
    "PathStatusFrame",
    "PathsBlockedFrame",
    "PingFrame",
    "QuicProtocolViolation",
    "ReachOutFrame",
    "RemoveAddressFrame",
    "ResetStreamFrame",
    "RetireConnectionIdFrame",
    "Role",
    "StopSendingFrame",
    "StreamDataBlockedFrame",
    "StreamFrame",
    "StreamsBlockedFrame",
    "canonical_ip",
    "frame_size",
    "parse_frames",
    "pull_ack",
    "pull_ack_frequency",
    "pull_add_address",
    "pull_connection_close",
    "pull_crypto",
    "pull_data_blocked",
    "pull_datagram",
    "pull_frame",
    "pull_frame_type",
    "pull_handshake_done",
    "pull_immediate_ack",
    "pull_max_data",
    "pull_max_path_id",
    "pull_max_stream_data",
    "pull_max_streams",
    "pull_new_connection_id",
    "pull_new_token",
    "pull_observed_address",
    "pull_padding",
    "pull_path_abandon",
    "pull_path_challenge",
    "pull_path_cids_blocked",
    "pull_path_response",
    "pull_path_status",
    "pull_paths_blocked",
    "pull_ping",
    "pull_reach_out",
    "pull_remove_address",
    "pull_reset_stream",
    "pull_retire_connection_id",
    "pull_stop_sending",
    "pull_stream",
    "pull_stream_data_blocked",
    "pull_streams_blocked",
    "push_ack",
    "push_ack_frequency",
    "push_add_address",
    "push_connection_close",
    "push_crypto",
    "push_data_blocked",
    "push_datagram",
    "push_frame",
    "push_handshake_done",
    "push_immediate_ack",
    "push_max_data",
    "push_max_path_id",
    "push_max_stream_data",
    "push_max_streams",
    "push_new_connection_id",
    "push_new_token",
    "push_observed_address",
    "push_padding",
    "push_path_abandon",
    "push_path_challenge",
    "push_path_cids_blocked",
    "push_path_response",
    "push_path_status",
    "push_paths_blocked",
    "push_ping",
    "push_reach_out",
    "push_remove_address",
    "push_reset_stream",
    "push_retire_connection_id",
    "push_stop_sending",
    "push_stream",
    "push_stream_data_blocked",
    "push_streams_blocked",
]

Frame: TypeAlias = (
    PaddingFrame
    | PingFrame
    | AckFrame
    | ResetStreamFrame
    | StopSendingFrame
    | CryptoFrame
    | NewTokenFrame
    | StreamFrame
    | MaxDataFrame
    | MaxStreamDataFrame
    | MaxStreamsFrame
    | DataBlockedFrame
    | StreamDataBlockedFrame
    | StreamsBlockedFrame
    | NewConnectionIdFrame
    | RetireConnectionIdFrame
    | PathChallengeFrame
    | PathResponseFrame
    | ConnectionCloseFrame
    | HandshakeDoneFrame
    | DatagramFrame
    | AckFrequencyFrame
    | ImmediateAckFrame
    | PathAbandonFrame
    | PathStatusFrame
    | MaxPathIdFrame
    | PathsBlockedFrame
    | PathCidsBlockedFrame
    | AddAddressFrame
    | ReachOutFrame
    | RemoveAddressFrame
    | ObservedAddressFrame
)

_PULL: Final[dict[int, Callable[[Buffer, int], Any]]] = {
    **core_frames.PULL,
    **extension_frames.PULL,
}
_PUSH: Final[dict[type, Callable[[Buffer, Any], None]]] = {
    **core_frames.PUSH,
    **extension_frames.PUSH,
}
_SIZE: Final[dict[type, Callable[[Any], int]]] = {
    **core_frames.SIZE,
    **extension_frames.SIZE,
}


def push_frame(buf: Buffer, frame: Frame) -> None:
    """Write any frame (type included)."""
    _PUSH[type(frame)](buf, frame)


def frame_size(frame: Frame) -> int:
    """Exact number of bytes :func:`push_frame` writes for ``frame``."""
    return _SIZE[type(frame)](frame)


_PACKET_NAMES: Final = {
    PACKET_INITIAL: "Initial",
    PACKET_0RTT: "0-RTT",
    PACKET_HANDSHAKE: "Handshake",
    PACKET_1RTT: "1-RTT",
}


def parse_frames(
    payload: bytes,
    packet_type: int,
    *,
    role: Role,
    multipath: bool = False,
    qnt: bool = False,
    qad: bool = False,
) -> list[Frame]:
    """Decode a decrypted packet payload into frames, enforcing where each may appear.

    ``packet_type`` is one ``PACKET_*`` flag; ``role`` is *our* role (so the sender is the other
    one); ``multipath``/``qnt``/``qad`` say which extensions were negotiated. Raises
    :class:`QuicProtocolViolation` with FRAME_ENCODING_ERROR for malformed or unknown frames and
    PROTOCOL_VIOLATION for frames that are not allowed here (wire doc §3.3-3.5).
    """
    if not payload:
        raise QuicProtocolViolation("packet without frames", code=PROTOCOL_VIOLATION)
    buf = Buffer(data=payload)
    end = len(payload)
    frames: list[Frame] = []
    append = frames.append
    while buf.tell() < end:
        append(
            pull_frame(
                buf,
                pull_frame_type(buf),
                packet_type,
                role=role,
                multipath=multipath,
                qnt=qnt,
                qad=qad,
            )
        )
    return frames


def pull_frame_type(buf: Buffer) -> int:
    """Read a frame type; a truncated one raises FRAME_ENCODING_ERROR."""
    try:
        return buf.pull_uint_var()
    except ValueError as exc:
        raise QuicProtocolViolation(
            f"malformed frame None: {exc}", code=FRAME_ENCODING_ERROR
        ) from None


def pull_frame(
    buf: Buffer,
    frame_type: int,
    packet_type: int,
    *,
    role: Role,
    multipath: bool = False,
    qnt: bool = False,
    qad: bool = False,
) -> Frame:
    """Decode one frame whose type was just read, enforcing the rules of :func:`parse_frames`."""
    info = FRAME_INFO.get(frame_type)
    if info is None:
        raise QuicProtocolViolation(
            f"unknown frame type {frame_type:#x}",
            code=FRAME_ENCODING_ERROR,
            frame_type=frame_type,
        )
    if not info.packets & packet_type:
        raise QuicProtocolViolation(
            f"{info.name} not allowed in {_PACKET_NAMES.get(packet_type, '?')} packet",
            code=PROTOCOL_VIOLATION,
            frame_type=frame_type,
        )
    ext = info.extension
    if ext is not None and not (
        (ext == "mp" and multipath) or (ext == "qnt" and qnt) or (ext == "qad" and qad)
    ):
        raise QuicProtocolViolation(
            f"{info.name} received but {ext} was not negotiated",
            code=PROTOCOL_VIOLATION,
            frame_type=frame_type,
        )
    if info.sender == role:
        raise QuicProtocolViolation(
            f"{info.name} may only be sent by the {info.sender}",
            code=PROTOCOL_VIOLATION,
            frame_type=frame_type,
        )
    try:
        return _PULL[frame_type](buf, frame_type)
    except (ValueError, FrameEncodingError) as exc:
        # BufferReadError and the ACK range check are ValueErrors; both mean a malformed frame.
        raise QuicProtocolViolation(
            f"malformed frame {hex(frame_type)}: {exc}",
            code=FRAME_ENCODING_ERROR,
            frame_type=frame_type,
        ) from None
