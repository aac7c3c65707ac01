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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final, Literal, TypeAlias

from aioiroh.errors import ProtocolError
from aioiroh.quic._aioquic import (
    UINT_VAR_MAX,
    Buffer,
    RangeSet,
    pull_ack_frame,
    push_ack_frame,
    size_uint_var,
)

__all__ = [
    "FRAME_INFO",
    "PACKET_0RTT",
    "PACKET_1RTT",
    "PACKET_HANDSHAKE",
    "PACKET_INITIAL",
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
    "pull_frame",
    "pull_frame_type",
    "push_frame",
]

Role: TypeAlias = Literal["client", "server"]
IpAddress: TypeAlias = IPv4Address | IPv6Address

# QUIC transport error codes used here (RFC 9000 §20.1).
FRAME_ENCODING_ERROR: Final = 0x07
PROTOCOL_VIOLATION: Final = 0x0A

# PathId is a u32 carried in a varint (wire doc §3.3).
MAX_PATH_ID: Final = 2**32 - 1
# RFC 9000 §17.2: connection IDs are at most 20 bytes.
MAX_CID_LENGTH: Final = 20
RESET_TOKEN_LENGTH: Final = 16
# RFC 9000 §19.11: a stream count above 2^60 cannot be encoded as a stream id.
MAX_STREAMS_LIMIT: Final = 2**60


class QuicProtocolViolation(ProtocolError):
    """A received frame broke a QUIC rule; ``code`` is the transport error code to close with.

    ``frame_type`` is the offending frame's type when known (it goes into CONNECTION_CLOSE).
    """

    def __init__(self, reason: str, *, code: int, frame_type: int | None = None) -> None:
        super().__init__(reason, code=code)
        self.frame_type = frame_type


class FrameType:
    """Frame type codepoints (integers, not an Enum: these are looked up per frame)."""

    PADDING: Final = 0x00
    PING: Final = 0x01
    ACK: Final = 0x02
    ACK_ECN: Final = 0x03
    RESET_STREAM: Final = 0x04
    STOP_SENDING: Final = 0x05
    CRYPTO: Final = 0x06
    NEW_TOKEN: Final = 0x07
    STREAM_BASE: Final = 0x08  # 0x08..0x0f: OFF=0x04, LEN=0x02, FIN=0x01
    MAX_DATA: Final = 0x10
    MAX_STREAM_DATA: Final = 0x11
    MAX_STREAMS_BIDI: Final = 0x12
    MAX_STREAMS_UNI: Final = 0x13
    DATA_BLOCKED: Final = 0x14
    STREAM_DATA_BLOCKED: Final = 0x15
    STREAMS_BLOCKED_BIDI: Final = 0x16
    STREAMS_BLOCKED_UNI: Final = 0x17
    NEW_CONNECTION_ID: Final = 0x18
    RETIRE_CONNECTION_ID: Final = 0x19
    PATH_CHALLENGE: Final = 0x1A
    PATH_RESPONSE: Final = 0x1B
    CONNECTION_CLOSE: Final = 0x1C
    APPLICATION_CLOSE: Final = 0x1D
    HANDSHAKE_DONE: Final = 0x1E
    # ACK frequency (draft-ietf-quic-ack-frequency)
    IMMEDIATE_ACK: Final = 0x1F
    ACK_FREQUENCY: Final = 0xAF
    # RFC 9221
    DATAGRAM: Final = 0x30
    DATAGRAM_WITH_LENGTH: Final = 0x31
    # Multipath (draft-ietf-quic-multipath, wire doc §3.3)
    PATH_ACK: Final = 0x3E
    PATH_ACK_ECN: Final = 0x3F
    PATH_ABANDON: Final = 0x3E75
    PATH_STATUS_BACKUP: Final = 0x3E76
    PATH_STATUS_AVAILABLE: Final = 0x3E77
    PATH_NEW_CONNECTION_ID: Final = 0x3E78
    PATH_RETIRE_CONNECTION_ID: Final = 0x3E79
    MAX_PATH_ID: Final = 0x3E7A
    PATHS_BLOCKED: Final = 0x3E7B
    PATH_CIDS_BLOCKED: Final = 0x3E7C
    # n0 NAT traversal (wire doc §3.4)
    ADD_IPV4_ADDRESS: Final = 0x3D7F90
    ADD_IPV6_ADDRESS: Final = 0x3D7F91
    REACH_OUT_IPV4: Final = 0x3D7F92
    REACH_OUT_IPV6: Final = 0x3D7F93
    REMOVE_ADDRESS: Final = 0x3D7F94
    # QUIC address discovery (wire doc §3.5)
    OBSERVED_IPV4_ADDRESS: Final = 0x9F81A6
    OBSERVED_IPV6_ADDRESS: Final = 0x9F81A7


# Packet types as bit flags, so FrameInfo.packets is one int test per frame.
PACKET_INITIAL: Final = 0x1
PACKET_0RTT: Final = 0x2
PACKET_HANDSHAKE: Final = 0x4
PACKET_1RTT: Final = 0x8
_IH01: Final = PACKET_INITIAL | PACKET_HANDSHAKE | PACKET_0RTT | PACKET_1RTT
_IH_1: Final = PACKET_INITIAL | PACKET_HANDSHAKE | PACKET_1RTT
_01: Final = PACKET_0RTT | PACKET_1RTT
_1: Final = PACKET_1RTT


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """Static properties of one frame type (RFC 9000 Table 3 plus the extensions)."""

    name: str
    """Frame name as the drafts spell it."""
    ack_eliciting: bool
    """Whether a packet carrying it must be acknowledged."""
    in_flight: bool
    """Whether it makes its packet count towards bytes in flight (RFC 9002 §2)."""
    probing: bool
    """Whether it is a probing frame (RFC 9000 §9.1)."""
    packets: int
    """Allowed packet types: OR of the ``PACKET_*`` flags."""
    extension: Literal["mp", "qnt", "qad"] | None
    """The extension that must be negotiated for it, if any."""
    sender: Literal["client", "server", "both"]
    """Which role may send it."""


def _info(
    name: str,
    packets: int,
    *,
    eliciting: bool = True,
    in_flight: bool | None = None,
    probing: bool = False,
    ext: Literal["mp", "qnt", "qad"] | None = None,
    sender: Literal["client", "server", "both"] = "both",
) -> FrameInfo:
    return FrameInfo(
        name,
        eliciting,
        eliciting if in_flight is None else in_flight,
        probing,
        packets,
        ext,
        sender,
    )


FT = FrameType
FRAME_INFO: Final[dict[int, FrameInfo]] = {
    FT.PADDING: _info("PADDING", _IH01, eliciting=False, in_flight=True, probing=True),
    FT.PING: _info("PING", _IH01),
    FT.ACK: _info("ACK", _IH_1, eliciting=False),
    FT.ACK_ECN: _info("ACK_ECN", _IH_1, eliciting=False),
    FT.RESET_STREAM: _info("RESET_STREAM", _01),
    FT.STOP_SENDING: _info("STOP_SENDING", _01),
    FT.CRYPTO: _info("CRYPTO", _IH_1),
    FT.NEW_TOKEN: _info("NEW_TOKEN", _1, sender="server"),
    **{t: _info("STREAM", _01) for t in range(0x08, 0x10)},
    FT.MAX_DATA: _info("MAX_DATA", _01),
    FT.MAX_STREAM_DATA: _info("MAX_STREAM_DATA", _01),
    FT.MAX_STREAMS_BIDI: _info("MAX_STREAMS", _01),
    FT.MAX_STREAMS_UNI: _info("MAX_STREAMS", _01),
    FT.DATA_BLOCKED: _info("DATA_BLOCKED", _01),
    FT.STREAM_DATA_BLOCKED: _info("STREAM_DATA_BLOCKED", _01),
    FT.STREAMS_BLOCKED_BIDI: _info("STREAMS_BLOCKED", _01),
    FT.STREAMS_BLOCKED_UNI: _info("STREAMS_BLOCKED", _01),
    FT.NEW_CONNECTION_ID: _info("NEW_CONNECTION_ID", _01, probing=True),
    FT.RETIRE_CONNECTION_ID: _info("RETIRE_CONNECTION_ID", _01),
    FT.PATH_CHALLENGE: _info("PATH_CHALLENGE", _01, probing=True),
    FT.PATH_RESPONSE: _info("PATH_RESPONSE", _1, probing=True),
    FT.CONNECTION_CLOSE: _info("CONNECTION_CLOSE", _IH01, eliciting=False),
    FT.APPLICATION_CLOSE: _info("CONNECTION_CLOSE", _01, eliciting=False),
    FT.HANDSHAKE_DONE: _info("HANDSHAKE_DONE", _1, sender="server"),
    FT.IMMEDIATE_ACK: _info("IMMEDIATE_ACK", _1),
    FT.ACK_FREQUENCY: _info("ACK_FREQUENCY", _1),
    FT.DATAGRAM: _info("DATAGRAM", _01),
    FT.DATAGRAM_WITH_LENGTH: _info("DATAGRAM", _01),
    FT.PATH_ACK: _info("PATH_ACK", _1, eliciting=False, ext="mp"),
    FT.PATH_ACK_ECN: _info("PATH_ACK_ECN", _1, eliciting=False, ext="mp"),
    FT.PATH_ABANDON: _info("PATH_ABANDON", _1, ext="mp"),
    FT.PATH_STATUS_BACKUP: _info("PATH_STATUS_BACKUP", _1, ext="mp"),
    FT.PATH_STATUS_AVAILABLE: _info("PATH_STATUS_AVAILABLE", _1, ext="mp"),
    FT.PATH_NEW_CONNECTION_ID: _info("PATH_NEW_CONNECTION_ID", _1, probing=True, ext="mp"),
    FT.PATH_RETIRE_CONNECTION_ID: _info("PATH_RETIRE_CONNECTION_ID", _1, ext="mp"),
    FT.MAX_PATH_ID: _info("MAX_PATH_ID", _1, ext="mp"),
    FT.PATHS_BLOCKED: _info("PATHS_BLOCKED", _1, ext="mp"),
    FT.PATH_CIDS_BLOCKED: _info("PATH_CIDS_BLOCKED", _1, ext="mp"),
    FT.ADD_IPV4_ADDRESS: _info("ADD_ADDRESS", _1, ext="qnt", sender="server"),
    FT.ADD_IPV6_ADDRESS: _info("ADD_ADDRESS", _1, ext="qnt", sender="server"),
    FT.REACH_OUT_IPV4: _info("REACH_OUT", _1, ext="qnt", sender="client"),
    FT.REACH_OUT_IPV6: _info("REACH_OUT", _1, ext="qnt", sender="client"),
    FT.REMOVE_ADDRESS: _info("REMOVE_ADDRESS", _1, ext="qnt", sender="server"),
    FT.OBSERVED_IPV4_ADDRESS: _info("OBSERVED_ADDRESS", _1, ext="qad"),
    FT.OBSERVED_IPV6_ADDRESS: _info("OBSERVED_ADDRESS", _1, ext="qad"),
}


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


@dataclass(frozen=True, slots=True)
class AckFrequencyFrame:
    """ACK_FREQUENCY (draft-ietf-quic-ack-frequency)."""

    sequence: int
    ack_eliciting_threshold: int
    request_max_ack_delay: int
    """Requested max ack delay in microseconds."""
    reordering_threshold: int


@dataclass(frozen=True, slots=True)
class ImmediateAckFrame:
    """IMMEDIATE_ACK."""


@dataclass(frozen=True, slots=True)
class PathAbandonFrame:
    """PATH_ABANDON."""

    path_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class PathStatusFrame:
    """PATH_STATUS_AVAILABLE when ``available``, else PATH_STATUS_BACKUP."""

    path_id: int
    sequence: int
    available: bool


@dataclass(frozen=True, slots=True)
class MaxPathIdFrame:
    """MAX_PATH_ID."""

    max_path_id: int


@dataclass(frozen=True, slots=True)
class PathsBlockedFrame:
    """PATHS_BLOCKED."""

    max_path_id: int


@dataclass(frozen=True, slots=True)
class PathCidsBlockedFrame:
    """PATH_CIDS_BLOCKED."""

    path_id: int
    next_sequence: int


@dataclass(frozen=True, slots=True)
class AddAddressFrame:
    """ADD_ADDRESS (server to client): a candidate address with its sequence number."""

    sequence: int
    ip: IpAddress
    port: int


@dataclass(frozen=True, slots=True)
class ReachOutFrame:
    """REACH_OUT (client to server): probe this client address in this round."""

    round: int
    ip: IpAddress
    port: int


@dataclass(frozen=True, slots=True)
class RemoveAddressFrame:
    """REMOVE_ADDRESS (server to client)."""

    sequence: int


@dataclass(frozen=True, slots=True)
class ObservedAddressFrame:
    """OBSERVED_IPV4_ADDRESS / OBSERVED_IPV6_ADDRESS (QAD)."""

    sequence: int
    ip: IpAddress
    port: int


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

_PING: Final = PingFrame()
_HANDSHAKE_DONE: Final = HandshakeDoneFrame()
_IMMEDIATE_ACK: Final = ImmediateAckFrame()


class _FrameEncodingError(Exception):
    """Internal: a field value that the wire format forbids (mapped to FRAME_ENCODING_ERROR)."""


def canonical_ip(ip: IpAddress) -> IpAddress:
    """Return ``ip`` with an IPv4-mapped IPv6 address turned into IPv4 (wire doc §3.4)."""
    if isinstance(ip, IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped
    return ip


def _pull_path_id(buf: Buffer) -> int:
    path_id = buf.pull_uint_var()
    if path_id > MAX_PATH_ID:
        raise _FrameEncodingError(f"path id {path_id} exceeds u32")
    return path_id


def _pull_len_bytes(buf: Buffer) -> bytes:
    length = buf.pull_uint_var()
    return buf.pull_bytes(length)


def _push_len_bytes(buf: Buffer, data: bytes) -> None:
    buf.push_uint_var(len(data))
    buf.push_bytes(data)


def _size_len_bytes(data: bytes) -> int:
    return size_uint_var(len(data)) + len(data)


def _pull_ip_port(buf: Buffer, ipv6: bool) -> tuple[IpAddress, int]:
    ip: IpAddress
    ip = canonical_ip(IPv6Address(buf.pull_bytes(16))) if ipv6 else IPv4Address(buf.pull_bytes(4))
    return ip, buf.pull_uint16()


def _push_ip_port(buf: Buffer, ip: IpAddress, port: int) -> None:
    buf.push_bytes(canonical_ip(ip).packed)
    buf.push_uint16(port)


def _ip_type(ip: IpAddress, v4_type: int) -> int:
    return v4_type if canonical_ip(ip).version == 4 else v4_type + 1


def _size_ip_port(ip: IpAddress) -> int:
    return (4 if canonical_ip(ip).version == 4 else 16) + 2


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
    path_id = _pull_path_id(buf) if frame_type >= FT.PATH_ACK else None
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
    data = _pull_len_bytes(buf)
    if offset + len(data) > UINT_VAR_MAX:
        raise _FrameEncodingError("CRYPTO frame beyond 2^62-1")
    return CryptoFrame(offset, data)


def push_crypto(buf: Buffer, frame: CryptoFrame) -> None:
    """Write CRYPTO."""
    buf.push_uint8(FT.CRYPTO)
    buf.push_uint_var(frame.offset)
    _push_len_bytes(buf, frame.data)


def pull_new_token(buf: Buffer, frame_type: int = FT.NEW_TOKEN) -> NewTokenFrame:
    """Read NEW_TOKEN (an empty token is an encoding error, RFC 9000 §19.7)."""
    token = _pull_len_bytes(buf)
    if not token:
        raise _FrameEncodingError("empty NEW_TOKEN")
    return NewTokenFrame(token)


def push_new_token(buf: Buffer, frame: NewTokenFrame) -> None:
    """Write NEW_TOKEN."""
    buf.push_uint8(FT.NEW_TOKEN)
    _push_len_bytes(buf, frame.token)


def pull_stream(buf: Buffer, frame_type: int = 0x0A) -> StreamFrame:
    """Read STREAM; without the LEN bit the data runs to the end of the payload."""
    stream_id = buf.pull_uint_var()
    offset = buf.pull_uint_var() if frame_type & 0x04 else 0
    data = _pull_len_bytes(buf) if frame_type & 2 else buf.pull_bytes(buf.capacity - buf.tell())
    if offset + len(data) > UINT_VAR_MAX:
        raise _FrameEncodingError("STREAM frame beyond 2^62-1")
    return StreamFrame(stream_id, offset, data, bool(frame_type & 0x01))


def _stream_type(frame: StreamFrame) -> int:
    return 0x0A | (0x04 if frame.offset else 0) | (0x01 if frame.fin else 0)


def push_stream(buf: Buffer, frame: StreamFrame) -> None:
    """Write STREAM with an explicit length."""
    buf.push_uint8(_stream_type(frame))
    buf.push_uint_var(frame.stream_id)
    if frame.offset:
        buf.push_uint_var(frame.offset)
    _push_len_bytes(buf, frame.data)


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
        raise _FrameEncodingError("MAX_STREAMS above 2^60")
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
        raise _FrameEncodingError("STREAMS_BLOCKED above 2^60")
    return StreamsBlockedFrame(frame_type == FT.STREAMS_BLOCKED_BIDI, limit)


def push_streams_blocked(buf: Buffer, frame: StreamsBlockedFrame) -> None:
    """Write STREAMS_BLOCKED."""
    buf.push_uint8(FT.STREAMS_BLOCKED_BIDI if frame.bidi else FT.STREAMS_BLOCKED_UNI)
    buf.push_uint_var(frame.limit)


def pull_new_connection_id(
    buf: Buffer, frame_type: int = FT.NEW_CONNECTION_ID
) -> NewConnectionIdFrame:
    """Read NEW_CONNECTION_ID or PATH_NEW_CONNECTION_ID."""
    path_id = _pull_path_id(buf) if frame_type == FT.PATH_NEW_CONNECTION_ID else None
    sequence = buf.pull_uint_var()
    retire_prior_to = buf.pull_uint_var()
    length = buf.pull_uint8()
    if not 1 <= length <= MAX_CID_LENGTH:
        raise _FrameEncodingError(f"connection id length {length}")
    if retire_prior_to > sequence:
        raise _FrameEncodingError("retire_prior_to above sequence number")
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
    path_id = _pull_path_id(buf) if frame_type == FT.PATH_RETIRE_CONNECTION_ID else None
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
    return ConnectionCloseFrame(error_code, offending, _pull_len_bytes(buf))


def push_connection_close(buf: Buffer, frame: ConnectionCloseFrame) -> None:
    """Write CONNECTION_CLOSE."""
    if frame.frame_type is None:
        buf.push_uint8(FT.APPLICATION_CLOSE)
        buf.push_uint_var(frame.error_code)
    else:
        buf.push_uint8(FT.CONNECTION_CLOSE)
        buf.push_uint_var(frame.error_code)
        buf.push_uint_var(frame.frame_type)
    _push_len_bytes(buf, frame.reason)


def pull_handshake_done(buf: Buffer, frame_type: int = FT.HANDSHAKE_DONE) -> HandshakeDoneFrame:
    """HANDSHAKE_DONE has no body."""
    return _HANDSHAKE_DONE


def push_handshake_done(buf: Buffer, frame: HandshakeDoneFrame) -> None:
    """Write HANDSHAKE_DONE."""
    buf.push_uint8(FT.HANDSHAKE_DONE)


def pull_datagram(buf: Buffer, frame_type: int = FT.DATAGRAM_WITH_LENGTH) -> DatagramFrame:
    """Read DATAGRAM; type 0x30 runs to the end of the payload."""
    if frame_type == FT.DATAGRAM_WITH_LENGTH:
        return DatagramFrame(_pull_len_bytes(buf))
    return DatagramFrame(buf.pull_bytes(buf.capacity - buf.tell()))


def push_datagram(buf: Buffer, frame: DatagramFrame) -> None:
    """Write DATAGRAM with an explicit length (type 0x31)."""
    buf.push_uint8(FT.DATAGRAM_WITH_LENGTH)
    _push_len_bytes(buf, frame.data)


def pull_ack_frequency(buf: Buffer, frame_type: int = FT.ACK_FREQUENCY) -> AckFrequencyFrame:
    """Read ACK_FREQUENCY."""
    return AckFrequencyFrame(
        buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var()
    )


def push_ack_frequency(buf: Buffer, frame: AckFrequencyFrame) -> None:
    """Write ACK_FREQUENCY."""
    buf.push_uint_var(FT.ACK_FREQUENCY)
    buf.push_uint_var(frame.sequence)
    buf.push_uint_var(frame.ack_eliciting_threshold)
    buf.push_uint_var(frame.request_max_ack_delay)
    buf.push_uint_var(frame.reordering_threshold)


def pull_immediate_ack(buf: Buffer, frame_type: int = FT.IMMEDIATE_ACK) -> ImmediateAckFrame:
    """IMMEDIATE_ACK has no body."""
    return _IMMEDIATE_ACK


def push_immediate_ack(buf: Buffer, frame: ImmediateAckFrame) -> None:
    """Write IMMEDIATE_ACK."""
    buf.push_uint8(FT.IMMEDIATE_ACK)


def pull_path_abandon(buf: Buffer, frame_type: int = FT.PATH_ABANDON) -> PathAbandonFrame:
    """Read PATH_ABANDON."""
    return PathAbandonFrame(_pull_path_id(buf), buf.pull_uint_var())


def push_path_abandon(buf: Buffer, frame: PathAbandonFrame) -> None:
    """Write PATH_ABANDON."""
    buf.push_uint_var(FT.PATH_ABANDON)
    buf.push_uint_var(frame.path_id)
    buf.push_uint_var(frame.error_code)


def pull_path_status(buf: Buffer, frame_type: int = FT.PATH_STATUS_AVAILABLE) -> PathStatusFrame:
    """Read PATH_STATUS_BACKUP / PATH_STATUS_AVAILABLE."""
    return PathStatusFrame(
        _pull_path_id(buf), buf.pull_uint_var(), frame_type == FT.PATH_STATUS_AVAILABLE
    )


def push_path_status(buf: Buffer, frame: PathStatusFrame) -> None:
    """Write PATH_STATUS_BACKUP / PATH_STATUS_AVAILABLE."""
    buf.push_uint_var(FT.PATH_STATUS_AVAILABLE if frame.available else FT.PATH_STATUS_BACKUP)
    buf.push_uint_var(frame.path_id)
    buf.push_uint_var(frame.sequence)


def pull_max_path_id(buf: Buffer, frame_type: int = FT.MAX_PATH_ID) -> MaxPathIdFrame:
    """Read MAX_PATH_ID."""
    return MaxPathIdFrame(_pull_path_id(buf))


def push_max_path_id(buf: Buffer, frame: MaxPathIdFrame) -> None:
    """Write MAX_PATH_ID."""
    buf.push_uint_var(FT.MAX_PATH_ID)
    buf.push_uint_var(frame.max_path_id)


def pull_paths_blocked(buf: Buffer, frame_type: int = FT.PATHS_BLOCKED) -> PathsBlockedFrame:
    """Read PATHS_BLOCKED."""
    return PathsBlockedFrame(_pull_path_id(buf))


def push_paths_blocked(buf: Buffer, frame: PathsBlockedFrame) -> None:
    """Write PATHS_BLOCKED."""
    buf.push_uint_var(FT.PATHS_BLOCKED)
    buf.push_uint_var(frame.max_path_id)


def pull_path_cids_blocked(
    buf: Buffer, frame_type: int = FT.PATH_CIDS_BLOCKED
) -> PathCidsBlockedFrame:
    """Read PATH_CIDS_BLOCKED."""
    return PathCidsBlockedFrame(_pull_path_id(buf), buf.pull_uint_var())


def push_path_cids_blocked(buf: Buffer, frame: PathCidsBlockedFrame) -> None:
    """Write PATH_CIDS_BLOCKED."""
    buf.push_uint_var(FT.PATH_CIDS_BLOCKED)
    buf.push_uint_var(frame.path_id)
    buf.push_uint_var(frame.next_sequence)


def pull_add_address(buf: Buffer, frame_type: int = FT.ADD_IPV4_ADDRESS) -> AddAddressFrame:
    """Read ADD_ADDRESS (IPv4 or IPv6 by type)."""
    sequence = buf.pull_uint_var()
    ip, port = _pull_ip_port(buf, frame_type == FT.ADD_IPV6_ADDRESS)
    return AddAddressFrame(sequence, ip, port)


def push_add_address(buf: Buffer, frame: AddAddressFrame) -> None:
    """Write ADD_ADDRESS (the IPv4 form for IPv4 and IPv4-mapped addresses)."""
    buf.push_uint_var(_ip_type(frame.ip, FT.ADD_IPV4_ADDRESS))
    buf.push_uint_var(frame.sequence)
    _push_ip_port(buf, frame.ip, frame.port)


def pull_reach_out(buf: Buffer, frame_type: int = FT.REACH_OUT_IPV4) -> ReachOutFrame:
    """Read REACH_OUT (IPv4 or IPv6 by type)."""
    round_ = buf.pull_uint_var()
    ip, port = _pull_ip_port(buf, frame_type == FT.REACH_OUT_IPV6)
    return ReachOutFrame(round_, ip, port)


def push_reach_out(buf: Buffer, frame: ReachOutFrame) -> None:
    """Write REACH_OUT."""
    buf.push_uint_var(_ip_type(frame.ip, FT.REACH_OUT_IPV4))
    buf.push_uint_var(frame.round)
    _push_ip_port(buf, frame.ip, frame.port)


def pull_remove_address(buf: Buffer, frame_type: int = FT.REMOVE_ADDRESS) -> RemoveAddressFrame:
    """Read REMOVE_ADDRESS."""
    return RemoveAddressFrame(buf.pull_uint_var())


def push_remove_address(buf: Buffer, frame: RemoveAddressFrame) -> None:
    """Write REMOVE_ADDRESS."""
    buf.push_uint_var(FT.REMOVE_ADDRESS)
    buf.push_uint_var(frame.sequence)


def pull_observed_address(
    buf: Buffer, frame_type: int = FT.OBSERVED_IPV4_ADDRESS
) -> ObservedAddressFrame:
    """Read OBSERVED_IPV4_ADDRESS / OBSERVED_IPV6_ADDRESS."""
    sequence = buf.pull_uint_var()
    ip, port = _pull_ip_port(buf, frame_type == FT.OBSERVED_IPV6_ADDRESS)
    return ObservedAddressFrame(sequence, ip, port)


def push_observed_address(buf: Buffer, frame: ObservedAddressFrame) -> None:
    """Write OBSERVED_*_ADDRESS."""
    buf.push_uint_var(_ip_type(frame.ip, FT.OBSERVED_IPV4_ADDRESS))
    buf.push_uint_var(frame.sequence)
    _push_ip_port(buf, frame.ip, frame.port)


# ---------------------------------------------------------------------------------------------
# Dispatch tables

_PULL: Final[dict[int, Callable[[Buffer, int], Any]]] = {
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
    FT.IMMEDIATE_ACK: pull_immediate_ack,
    FT.ACK_FREQUENCY: pull_ack_frequency,
    FT.DATAGRAM: pull_datagram,
    FT.DATAGRAM_WITH_LENGTH: pull_datagram,
    FT.PATH_ACK: pull_ack,
    FT.PATH_ACK_ECN: pull_ack,
    FT.PATH_ABANDON: pull_path_abandon,
    FT.PATH_STATUS_BACKUP: pull_path_status,
    FT.PATH_STATUS_AVAILABLE: pull_path_status,
    FT.PATH_NEW_CONNECTION_ID: pull_new_connection_id,
    FT.PATH_RETIRE_CONNECTION_ID: pull_retire_connection_id,
    FT.MAX_PATH_ID: pull_max_path_id,
    FT.PATHS_BLOCKED: pull_paths_blocked,
    FT.PATH_CIDS_BLOCKED: pull_path_cids_blocked,
    FT.ADD_IPV4_ADDRESS: pull_add_address,
    FT.ADD_IPV6_ADDRESS: pull_add_address,
    FT.REACH_OUT_IPV4: pull_reach_out,
    FT.REACH_OUT_IPV6: pull_reach_out,
    FT.REMOVE_ADDRESS: pull_remove_address,
    FT.OBSERVED_IPV4_ADDRESS: pull_observed_address,
    FT.OBSERVED_IPV6_ADDRESS: pull_observed_address,
}

_PUSH: Final[dict[type, Callable[[Buffer, Any], None]]] = {
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
    AckFrequencyFrame: push_ack_frequency,
    ImmediateAckFrame: push_immediate_ack,
    PathAbandonFrame: push_path_abandon,
    PathStatusFrame: push_path_status,
    MaxPathIdFrame: push_max_path_id,
    PathsBlockedFrame: push_paths_blocked,
    PathCidsBlockedFrame: push_path_cids_blocked,
    AddAddressFrame: push_add_address,
    ReachOutFrame: push_reach_out,
    RemoveAddressFrame: push_remove_address,
    ObservedAddressFrame: push_observed_address,
}

_v = size_uint_var
_SIZE: Final[dict[type, Callable[[Any], int]]] = {
    PaddingFrame: lambda f: f.length,
    PingFrame: lambda f: 1,
    AckFrame: _size_ack,
    ResetStreamFrame: lambda f: 1 + _v(f.stream_id) + _v(f.error_code) + _v(f.final_size),
    StopSendingFrame: lambda f: 1 + _v(f.stream_id) + _v(f.error_code),
    CryptoFrame: lambda f: 1 + _v(f.offset) + _size_len_bytes(f.data),
    NewTokenFrame: lambda f: 1 + _size_len_bytes(f.token),
    StreamFrame: lambda f: (
        1 + _v(f.stream_id) + (_v(f.offset) if f.offset else 0) + _size_len_bytes(f.data)
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
        + _size_len_bytes(f.reason)
    ),
    HandshakeDoneFrame: lambda f: 1,
    DatagramFrame: lambda f: 1 + _size_len_bytes(f.data),
    AckFrequencyFrame: lambda f: (
        _v(FT.ACK_FREQUENCY)
        + _v(f.sequence)
        + _v(f.ack_eliciting_threshold)
        + _v(f.request_max_ack_delay)
        + _v(f.reordering_threshold)
    ),
    ImmediateAckFrame: lambda f: 1,
    PathAbandonFrame: lambda f: _v(FT.PATH_ABANDON) + _v(f.path_id) + _v(f.error_code),
    PathStatusFrame: lambda f: _v(FT.PATH_STATUS_BACKUP) + _v(f.path_id) + _v(f.sequence),
    MaxPathIdFrame: lambda f: _v(FT.MAX_PATH_ID) + _v(f.max_path_id),
    PathsBlockedFrame: lambda f: _v(FT.PATHS_BLOCKED) + _v(f.max_path_id),
    PathCidsBlockedFrame: lambda f: _v(FT.PATH_CIDS_BLOCKED) + _v(f.path_id) + _v(f.next_sequence),
    AddAddressFrame: lambda f: _v(FT.ADD_IPV4_ADDRESS) + _v(f.sequence) + _size_ip_port(f.ip),
    ReachOutFrame: lambda f: _v(FT.REACH_OUT_IPV4) + _v(f.round) + _size_ip_port(f.ip),
    RemoveAddressFrame: lambda f: _v(FT.REMOVE_ADDRESS) + _v(f.sequence),
    ObservedAddressFrame: lambda f: (
        _v(FT.OBSERVED_IPV4_ADDRESS) + _v(f.sequence) + _size_ip_port(f.ip)
    ),
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
    except (ValueError, _FrameEncodingError) as exc:
        # BufferReadError and the ACK range check are ValueErrors; both mean a malformed frame.
        raise QuicProtocolViolation(
            f"malformed frame {hex(frame_type)}: {exc}",
            code=FRAME_ENCODING_ERROR,
            frame_type=frame_type,
        ) from None
