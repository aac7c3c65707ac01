"""RFC 9000 frame codecs (plus RFC 9221 DATAGRAM): one frozen dataclass and a pull/push pair each.

Sans-I/O. ACK, NEW_CONNECTION_ID and RETIRE_CONNECTION_ID live here with an optional
``path_id``: their multipath PATH_* variants share the class and codec (as in noq). Owns the
codec entries for these frames; :mod:`.frames` merges them with :mod:`.extension_frames` into
the dispatch tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aioiroh.quic._aioquic import (
    UINT_VAR_MAX,
    Buffer,
    RangeSet,
    pull_ack_frame,
    push_ack_frame,
    size_uint_var,
)
from aioiroh.quic.frame_types import (
    FT,
    MAX_CID_LENGTH,
    MAX_STREAMS_LIMIT,
    RESET_TOKEN_LENGTH,
    FrameEncodingError,
    pull_len_bytes,
    pull_path_id,
    push_len_bytes,
    size_len_bytes,
)

# ---------------------------------------------------------------------------------------------
# Frame classes


@dataclass(frozen=True, slots=True)
class PaddingFrame:
    """A run of PADDING bytes (0x00), parsed as one frame."""

    length: int = 1
    """Number of padding bytes, type bytes included."""


@dataclass(frozen=True, slots=True)
class PingFrame:
    """PING: elicits an acknowledgement."""


@dataclass(frozen=True, slots=True)
class AckFrame:
    """ACK / ACK_ECN, or PATH_ACK / PATH_ACK_ECN when ``path_id`` is set."""

    ranges: RangeSet
    """Acknowledged packet numbers (non-empty)."""
    ack_delay: int
    """Encoded ACK delay (scaled by the peer's ack_delay_exponent)."""
    ecn: tuple[int, int, int] | None = None
    """ECT(0), ECT(1), CE counts for the ECN variants."""
    path_id: int | None = None
    """Path whose packet-number space is acknowledged; ``None`` for plain ACK."""


@dataclass(frozen=True, slots=True)
class ResetStreamFrame:
    """RESET_STREAM."""

    stream_id: int
    error_code: int
    final_size: int


@dataclass(frozen=True, slots=True)
class StopSendingFrame:
    """STOP_SENDING."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class CryptoFrame:
    """CRYPTO: TLS handshake bytes at ``offset``."""

    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NewTokenFrame:
    """NEW_TOKEN (server to client)."""

    token: bytes


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """STREAM. Always written with an explicit length; the OFF bit only when ``offset > 0``."""

    stream_id: int
    offset: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class MaxDataFrame:
    """MAX_DATA."""

    maximum: int


@dataclass(frozen=True, slots=True)
class MaxStreamDataFrame:
    """MAX_STREAM_DATA."""

    stream_id: int
    maximum: int


@dataclass(frozen=True, slots=True)
class MaxStreamsFrame:
    """MAX_STREAMS (bidirectional when ``bidi``)."""

    bidi: bool
    maximum: int


@dataclass(frozen=True, slots=True)
class DataBlockedFrame:
    """DATA_BLOCKED."""

    limit: int


@dataclass(frozen=True, slots=True)
class StreamDataBlockedFrame:
    """STREAM_DATA_BLOCKED."""

    stream_id: int
    limit: int


@dataclass(frozen=True, slots=True)
class StreamsBlockedFrame:
    """STREAMS_BLOCKED (bidirectional when ``bidi``)."""

    bidi: bool
    limit: int


@dataclass(frozen=True, slots=True)
class NewConnectionIdFrame:
    """NEW_CONNECTION_ID, or PATH_NEW_CONNECTION_ID when ``path_id`` is set."""

    sequence: int
    retire_prior_to: int
    connection_id: bytes
    reset_token: bytes
    path_id: int | None = None


@dataclass(frozen=True, slots=True)
class RetireConnectionIdFrame:
    """RETIRE_CONNECTION_ID, or PATH_RETIRE_CONNECTION_ID when ``path_id`` is set."""

    sequence: int
    path_id: int | None = None


@dataclass(frozen=True, slots=True)
class PathChallengeFrame:
    """PATH_CHALLENGE with 8 bytes of data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PathResponseFrame:
    """PATH_RESPONSE echoing a challenge's 8 bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionCloseFrame:
    """CONNECTION_CLOSE: transport close (0x1c) unless ``frame_type`` is None (0x1d)."""

    error_code: int
    frame_type: int | None
    reason: bytes = b""


@dataclass(frozen=True, slots=True)
class HandshakeDoneFrame:
    """HANDSHAKE_DONE (server to client)."""


@dataclass(frozen=True, slots=True)
class DatagramFrame:
    """DATAGRAM (RFC 9221). Written with an explicit length."""

    data: bytes


_PING: Final = PingFrame()
_HANDSHAKE_DONE: Final = HandshakeDoneFrame()


# ---------------------------------------------------------------------------------------------
# pull_* (after the type varint) / push_* (type included)


def pull_padding(buf: Buffer, frame_type: int = FT.PADDING) -> PaddingFrame:
    """Consume the rest of a PADDING run (the first 0x00 was already read as the type)."""
    pos = buf.tell()
    rest = buf.data_slice(pos, buf.capacity)
    run = len(rest) - len(rest.lstrip(b"\x00"))
    buf.seek(pos + run)
    return PaddingFrame(run + 1)


def push_padding(buf: Buffer, frame: PaddingFrame) -> None:
    """Write ``frame.length`` zero bytes."""
    buf.push_bytes(bytes(frame.length))


def pull_ping(buf: Buffer, frame_type: int = FT.PING) -> PingFrame:
    """PING has no body."""
    return _PING


def push_ping(buf: Buffer, frame: PingFrame) -> None:
    """Write a PING."""
    buf.push_uint8(FT.PING)


def pull_ack(buf: Buffer, frame_type: int = FT.ACK) -> AckFrame:
    """Read ACK, ACK_ECN, PATH_ACK or PATH_ACK_ECN (by ``frame_type``)."""
    path_id = pull_path_id(buf) if frame_type >= FT.PATH_ACK else None
    ranges, delay = pull_ack_frame(buf)
    ecn = None
    if frame_type & 1:
        ecn = (buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var())
    return AckFrame(ranges, delay, ecn, path_id)


def _ack_type(frame: AckFrame) -> int:
    base = FT.ACK if frame.path_id is None else FT.PATH_ACK
    return base if frame.ecn is None else base + 1


def push_ack(buf: Buffer, frame: AckFrame) -> None:
    """Write an ACK-family frame with all its ranges."""
    buf.push_uint_var(_ack_type(frame))
    if frame.path_id is not None:
        buf.push_uint_var(frame.path_id)
    # No capacity limit here: the caller sized the packet with frame_size().
    push_ack_frame(buf, frame.ranges, frame.ack_delay, 1 << 30)
    if frame.ecn is not None:
        for count in frame.ecn:
            buf.push_uint_var(count)


def _size_ack(frame: AckFrame) -> int:
    ranges = frame.ranges
    last = ranges[-1]
    size = size_uint_var(_ack_type(frame)) + size_uint_var(last.stop - 1)
    size += size_uint_var(frame.ack_delay) + size_uint_var(len(ranges) - 1)
    size += size_uint_var(last.stop - 1 - last.start)
    start = last.start
    for i in range(len(ranges) - 2, -1, -1):
        r = ranges[i]
        size += size_uint_var(start - r.stop - 1) + size_uint_var(r.stop - 1 - r.start)
        start = r.start
    if frame.path_id is not None:
        size += size_uint_var(frame.path_id)
    if frame.ecn is not None:
        size += sum(size_uint_var(c) for c in frame.ecn)
    return size


def pull_reset_stream(buf: Buffer, frame_type: int = FT.RESET_STREAM) -> ResetStreamFrame:
    """Read RESET_STREAM."""
    return ResetStreamFrame(buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var())


def push_reset_stream(buf: Buffer, frame: ResetStreamFrame) -> None:
    """Write RESET_STREAM."""
    buf.push_uint8(FT.RESET_STREAM)
    buf.push_uint_var(frame.stream_id)
    buf.push_uint_var(frame.error_code)
    buf.push_uint_var(frame.final_size)


def pull_stop_sending(buf: Buffer, frame_type: int = FT.STOP_SENDING) -> StopSendingFrame:
    """Read STOP_SENDING."""
    return StopSendingFrame(buf.pull_uint_var(), buf.pull_uint_var())


def push_stop_sending(buf: Buffer, frame: StopSendingFrame) -> None:
    """Write STOP_SENDING."""
    buf.push_uint8(FT.STOP_SENDING)
    buf.push_uint_var(frame.stream_id)
    buf.push_uint_var(frame.error_code)


def pull_crypto(buf: Buffer, frame_type: int = FT.CRYPTO) -> CryptoFrame:
    """Read CRYPTO."""
    offset = buf.pull_uint_var()
    data = pull_len_bytes(buf)
    if offset + len(data) > UINT_VAR_MAX:
        raise FrameEncodingError("CRYPTO frame beyond 2^62-1")
    return CryptoFrame(offset, data)


def push_crypto(buf: Buffer, frame: CryptoFrame) -> None:
    """Write CRYPTO."""
    buf.push_uint8(FT.CRYPTO)
    buf.push_uint_var(frame.offset)
    push_len_bytes(buf, frame.data)


def pull_new_token(buf: Buffer, frame_type: int = FT.NEW_TOKEN) -> NewTokenFrame:
    """Read NEW_TOKEN (an empty token is an encoding error, RFC 9000 §19.7)."""
    token = pull_len_bytes(buf)
    if not token:
        raise FrameEncodingError("empty NEW_TOKEN")
    return NewTokenFrame(token)


def push_new_token(buf: Buffer, frame: NewTokenFrame) -> None:
    """Write NEW_TOKEN."""
    buf.push_uint8(FT.NEW_TOKEN)
    push_len_bytes(buf, frame.token)


def pull_stream(buf: Buffer, frame_type: int = 0x0A) -> StreamFrame:
    """Read STREAM; without the LEN bit the data runs to the end of the payload."""
    stream_id = buf.pull_uint_var()
    offset = buf.pull_uint_var() if frame_type & 0x04 else 0
    data = pull_len_bytes(buf) if frame_type & 2 else buf.pull_bytes(buf.capacity - buf.tell())
    if offset + len(data) > UINT_VAR_MAX:
        raise FrameEncodingError("STREAM frame beyond 2^62-1")
    return StreamFrame(stream_id, offset, data, bool(frame_type & 0x01))


def _stream_type(frame: StreamFrame) -> int:
    return 0x0A | (0x04 if frame.offset else 0) | (0x01 if frame.fin else 0)


def push_stream(buf: Buffer, frame: StreamFrame) -> None:
    """Write STREAM with an explicit length."""
    buf.push_uint8(_stream_type(frame))
    buf.push_uint_var(frame.stream_id)
    if frame.offset:
        buf.push_uint_var(frame.offset)
    push_len_bytes(buf, frame.data)


def pull_max_data(buf: Buffer, frame_type: int = FT.MAX_DATA) -> MaxDataFrame:
    """Read MAX_DATA."""
    return MaxDataFrame(buf.pull_uint_var())


def push_max_data(buf: Buffer, frame: MaxDataFrame) -> None:
    """Write MAX_DATA."""
    buf.push_uint8(FT.MAX_DATA)
    buf.push_uint_var(frame.maximum)


def pull_max_stream_data(buf: Buffer, frame_type: int = FT.MAX_STREAM_DATA) -> MaxStreamDataFrame:
    """Read MAX_STREAM_DATA."""
    return MaxStreamDataFrame(buf.pull_uint_var(), buf.pull_uint_var())


def push_max_stream_data(buf: Buffer, frame: MaxStreamDataFrame) -> None:
    """Write MAX_STREAM_DATA."""
    buf.push_uint8(FT.MAX_STREAM_DATA)
    buf.push_uint_var(frame.stream_id)
    buf.push_uint_var(frame.maximum)


def pull_max_streams(buf: Buffer, frame_type: int = FT.MAX_STREAMS_BIDI) -> MaxStreamsFrame:
    """Read MAX_STREAMS (bidi or uni by type)."""
    maximum = buf.pull_uint_var()
    if maximum > MAX_STREAMS_LIMIT:
        raise FrameEncodingError("MAX_STREAMS above 2^60")
    return MaxStreamsFrame(frame_type == FT.MAX_STREAMS_BIDI, maximum)


def push_max_streams(buf: Buffer, frame: MaxStreamsFrame) -> None:
    """Write MAX_STREAMS."""
    buf.push_uint8(FT.MAX_STREAMS_BIDI if frame.bidi else FT.MAX_STREAMS_UNI)
    buf.push_uint_var(frame.maximum)


def pull_data_blocked(buf: Buffer, frame_type: int = FT.DATA_BLOCKED) -> DataBlockedFrame:
    """Read DATA_BLOCKED."""
    return DataBlockedFrame(buf.pull_uint_var())


def push_data_blocked(buf: Buffer, frame: DataBlockedFrame) -> None:
    """Write DATA_BLOCKED."""
    buf.push_uint8(FT.DATA_BLOCKED)
    buf.push_uint_var(frame.limit)


def pull_stream_data_blocked(
    buf: Buffer, frame_type: int = FT.STREAM_DATA_BLOCKED
) -> StreamDataBlockedFrame:
    """Read STREAM_DATA_BLOCKED."""
    return StreamDataBlockedFrame(buf.pull_uint_var(), buf.pull_uint_var())


def push_stream_data_blocked(buf: Buffer, frame: StreamDataBlockedFrame) -> None:
    """Write STREAM_DATA_BLOCKED."""
    buf.push_uint8(FT.STREAM_DATA_BLOCKED)
    buf.push_uint_var(frame.stream_id)
    buf.push_uint_var(frame.limit)


def pull_streams_blocked(
    buf: Buffer, frame_type: int = FT.STREAMS_BLOCKED_BIDI
) -> StreamsBlockedFrame:
    """Read STREAMS_BLOCKED (bidi or uni by type)."""
    limit = buf.pull_uint_var()
    if limit > MAX_STREAMS_LIMIT:
        raise FrameEncodingError("STREAMS_BLOCKED above 2^60")
    return StreamsBlockedFrame(frame_type == FT.STREAMS_BLOCKED_BIDI, limit)


def push_streams_blocked(buf: Buffer, frame: StreamsBlockedFrame) -> None:
    """Write STREAMS_BLOCKED."""
    buf.push_uint8(FT.STREAMS_BLOCKED_BIDI if frame.bidi else FT.STREAMS_BLOCKED_UNI)
    buf.push_uint_var(frame.limit)


def pull_new_connection_id(
    buf: Buffer, frame_type: int = FT.NEW_CONNECTION_ID
) -> NewConnectionIdFrame:
    """Read NEW_CONNECTION_ID or PATH_NEW_CONNECTION_ID."""
    path_id = pull_path_id(buf) if frame_type == FT.PATH_NEW_CONNECTION_ID else None
    sequence = buf.pull_uint_var()
    retire_prior_to = buf.pull_uint_var()
    length = buf.pull_uint8()
    if not 1 <= length <= MAX_CID_LENGTH:
        raise FrameEncodingError(f"connection id length {length}")
    if retire_prior_to > sequence:
        raise FrameEncodingError("retire_prior_to above sequence number")
    cid = buf.pull_bytes(length)
    token = buf.pull_bytes(RESET_TOKEN_LENGTH)
    return NewConnectionIdFrame(sequence, retire_prior_to, cid, token, path_id)


def push_new_connection_id(buf: Buffer, frame: NewConnectionIdFrame) -> None:
    """Write NEW_CONNECTION_ID or PATH_NEW_CONNECTION_ID."""
    if frame.path_id is None:
        buf.push_uint8(FT.NEW_CONNECTION_ID)
    else:
        buf.push_uint_var(FT.PATH_NEW_CONNECTION_ID)
        buf.push_uint_var(frame.path_id)
    buf.push_uint_var(frame.sequence)
    buf.push_uint_var(frame.retire_prior_to)
    buf.push_uint8(len(frame.connection_id))
    buf.push_bytes(frame.connection_id)
    buf.push_bytes(frame.reset_token)


def pull_retire_connection_id(
    buf: Buffer, frame_type: int = FT.RETIRE_CONNECTION_ID
) -> RetireConnectionIdFrame:
    """Read RETIRE_CONNECTION_ID or PATH_RETIRE_CONNECTION_ID."""
    path_id = pull_path_id(buf) if frame_type == FT.PATH_RETIRE_CONNECTION_ID else None
    return RetireConnectionIdFrame(buf.pull_uint_var(), path_id)


def push_retire_connection_id(buf: Buffer, frame: RetireConnectionIdFrame) -> None:
    """Write RETIRE_CONNECTION_ID or PATH_RETIRE_CONNECTION_ID."""
    if frame.path_id is None:
        buf.push_uint8(FT.RETIRE_CONNECTION_ID)
    else:
        buf.push_uint_var(FT.PATH_RETIRE_CONNECTION_ID)
        buf.push_uint_var(frame.path_id)
    buf.push_uint_var(frame.sequence)


def pull_path_challenge(buf: Buffer, frame_type: int = FT.PATH_CHALLENGE) -> PathChallengeFrame:
    """Read PATH_CHALLENGE."""
    return PathChallengeFrame(buf.pull_bytes(8))


def push_path_challenge(buf: Buffer, frame: PathChallengeFrame) -> None:
    """Write PATH_CHALLENGE."""
    buf.push_uint8(FT.PATH_CHALLENGE)
    buf.push_bytes(frame.data)


def pull_path_response(buf: Buffer, frame_type: int = FT.PATH_RESPONSE) -> PathResponseFrame:
    """Read PATH_RESPONSE."""
    return PathResponseFrame(buf.pull_bytes(8))


def push_path_response(buf: Buffer, frame: PathResponseFrame) -> None:
    """Write PATH_RESPONSE."""
    buf.push_uint8(FT.PATH_RESPONSE)
    buf.push_bytes(frame.data)


def pull_connection_close(
    buf: Buffer, frame_type: int = FT.CONNECTION_CLOSE
) -> ConnectionCloseFrame:
    """Read CONNECTION_CLOSE (transport 0x1c or application 0x1d)."""
    error_code = buf.pull_uint_var()
    offending = buf.pull_uint_var() if frame_type == FT.CONNECTION_CLOSE else None
    return ConnectionCloseFrame(error_code, offending, pull_len_bytes(buf))


def push_connection_close(buf: Buffer, frame: ConnectionCloseFrame) -> None:
    """Write CONNECTION_CLOSE."""
    if frame.frame_type is None:
        buf.push_uint8(FT.APPLICATION_CLOSE)
        buf.push_uint_var(frame.error_code)
    else:
        buf.push_uint8(FT.CONNECTION_CLOSE)
        buf.push_uint_var(frame.error_code)
        buf.push_uint_var(frame.frame_type)
    push_len_bytes(buf, frame.reason)


def pull_handshake_done(buf: Buffer, frame_type: int = FT.HANDSHAKE_DONE) -> HandshakeDoneFrame:
    """HANDSHAKE_DONE has no body."""
    return _HANDSHAKE_DONE


def push_handshake_done(buf: Buffer, frame: HandshakeDoneFrame) -> None:
    """Write HANDSHAKE_DONE."""
    buf.push_uint8(FT.HANDSHAKE_DONE)


def pull_datagram(buf: Buffer, frame_type: int = FT.DATAGRAM_WITH_LENGTH) -> DatagramFrame:
    """Read DATAGRAM; type 0x30 runs to the end of the payload."""
    if frame_type == FT.DATAGRAM_WITH_LENGTH:
        return DatagramFrame(pull_len_bytes(buf))
    return DatagramFrame(buf.pull_bytes(buf.capacity - buf.tell()))


def push_datagram(buf: Buffer, frame: DatagramFrame) -> None:
    """Write DATAGRAM with an explicit length (type 0x31)."""
    buf.push_uint8(FT.DATAGRAM_WITH_LENGTH)
    push_len_bytes(buf, frame.data)


# ---------------------------------------------------------------------------------------------
# Dispatch entries (RFC 9000 and DATAGRAM), merged by :mod:`.frames`

PULL: Final[dict[int, Callable[[Buffer, int], Any]]] = {
    FT.PADDING: pull_padding,
    FT.PING: pull_ping,
    FT.ACK: pull_ack,
    FT.ACK_ECN: pull_ack,
    FT.RESET_STREAM: pull_reset_stream,
    FT.STOP_SENDING: pull_stop_sending,
    FT.CRYPTO: pull_crypto,
    FT.NEW_TOKEN: pull_new_token,
    **dict.fromkeys(range(0x08, 0x10), pull_stream),
    FT.MAX_DATA: pull_max_data,
    FT.MAX_STREAM_DATA: pull_max_stream_data,
    FT.MAX_STREAMS_BIDI: pull_max_streams,
    FT.MAX_STREAMS_UNI: pull_max_streams,
    FT.DATA_BLOCKED: pull_data_blocked,
    FT.STREAM_DATA_BLOCKED: pull_stream_data_blocked,
    FT.STREAMS_BLOCKED_BIDI: pull_streams_blocked,
    FT.STREAMS_BLOCKED_UNI: pull_streams_blocked,
    FT.NEW_CONNECTION_ID: pull_new_connection_id,
    FT.RETIRE_CONNECTION_ID: pull_retire_connection_id,
    FT.PATH_CHALLENGE: pull_path_challenge,
    FT.PATH_RESPONSE: pull_path_response,
    FT.CONNECTION_CLOSE: pull_connection_close,
    FT.APPLICATION_CLOSE: pull_connection_close,
    FT.HANDSHAKE_DONE: pull_handshake_done,
    FT.DATAGRAM: pull_datagram,
    FT.DATAGRAM_WITH_LENGTH: pull_datagram,
    FT.PATH_ACK: pull_ack,
    FT.PATH_ACK_ECN: pull_ack,
    FT.PATH_NEW_CONNECTION_ID: pull_new_connection_id,
    FT.PATH_RETIRE_CONNECTION_ID: pull_retire_connection_id,
}

PUSH: Final[dict[type, Callable[[Buffer, Any], None]]] = {
    PaddingFrame: push_padding,
    PingFrame: push_ping,
    AckFrame: push_ack,
    ResetStreamFrame: push_reset_stream,
    StopSendingFrame: push_stop_sending,
    CryptoFrame: push_crypto,
    NewTokenFrame: push_new_token,
    StreamFrame: push_stream,
    MaxDataFrame: push_max_data,
    MaxStreamDataFrame: push_max_stream_data,
    MaxStreamsFrame: push_max_streams,
    DataBlockedFrame: push_data_blocked,
    StreamDataBlockedFrame: push_stream_data_blocked,
    StreamsBlockedFrame: push_streams_blocked,
    NewConnectionIdFrame: push_new_connection_id,
    RetireConnectionIdFrame: push_retire_connection_id,
    PathChallengeFrame: push_path_challenge,
    PathResponseFrame: push_path_response,
    ConnectionCloseFrame: push_connection_close,
    HandshakeDoneFrame: push_handshake_done,
    DatagramFrame: push_datagram,
}

_v = size_uint_var
SIZE: Final[dict[type, Callable[[Any], int]]] = {
    PaddingFrame: lambda f: f.length,
    PingFrame: lambda f: 1,
    AckFrame: _size_ack,
    ResetStreamFrame: lambda f: 1 + _v(f.stream_id) + _v(f.error_code) + _v(f.final_size),
    StopSendingFrame: lambda f: 1 + _v(f.stream_id) + _v(f.error_code),
    CryptoFrame: lambda f: 1 + _v(f.offset) + size_len_bytes(f.data),
    NewTokenFrame: lambda f: 1 + size_len_bytes(f.token),
    StreamFrame: lambda f: (
        1 + _v(f.stream_id) + (_v(f.offset) if f.offset else 0) + size_len_bytes(f.data)
    ),
    MaxDataFrame: lambda f: 1 + _v(f.maximum),
    MaxStreamDataFrame: lambda f: 1 + _v(f.stream_id) + _v(f.maximum),
    MaxStreamsFrame: lambda f: 1 + _v(f.maximum),
    DataBlockedFrame: lambda f: 1 + _v(f.limit),
    StreamDataBlockedFrame: lambda f: 1 + _v(f.stream_id) + _v(f.limit),
    StreamsBlockedFrame: lambda f: 1 + _v(f.limit),
    NewConnectionIdFrame: lambda f: (
        (1 if f.path_id is None else _v(FT.PATH_NEW_CONNECTION_ID) + _v(f.path_id))
        + _v(f.sequence)
        + _v(f.retire_prior_to)
        + 1
        + len(f.connection_id)
        + len(f.reset_token)
    ),
    RetireConnectionIdFrame: lambda f: (
        (1 if f.path_id is None else _v(FT.PATH_RETIRE_CONNECTION_ID) + _v(f.path_id))
        + _v(f.sequence)
    ),
    PathChallengeFrame: lambda f: 1 + len(f.data),
    PathResponseFrame: lambda f: 1 + len(f.data),
    ConnectionCloseFrame: lambda f: (
        1
        + _v(f.error_code)
        + (0 if f.frame_type is None else _v(f.frame_type))
        + size_len_bytes(f.reason)
    ),
    HandshakeDoneFrame: lambda f: 1,
    DatagramFrame: lambda f: 1 + size_len_bytes(f.data),
}
