"""QUIC frame vocabulary: type codepoints, placement rules and the shared field codecs.

Sans-I/O values only. Owns :class:`FrameType`, the ``PACKET_*`` flags, :data:`FRAME_INFO` (which
packets, extensions and roles each frame type is allowed in), :class:`QuicProtocolViolation`
and the small field readers/writers that the frame families in :mod:`.core_frames` and
:mod:`.extension_frames` share. :mod:`.frames` is the public face and re-exports all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Final, Literal, TypeAlias

from aioiroh.errors import ProtocolError
from aioiroh.quic._aioquic import Buffer, size_uint_var

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


class FrameEncodingError(Exception):
    """A field value that the wire format forbids (mapped to FRAME_ENCODING_ERROR)."""


def pull_path_id(buf: Buffer) -> int:
    path_id = buf.pull_uint_var()
    if path_id > MAX_PATH_ID:
        raise FrameEncodingError(f"path id {path_id} exceeds u32")
    return path_id


def pull_len_bytes(buf: Buffer) -> bytes:
    length = buf.pull_uint_var()
    return buf.pull_bytes(length)


def push_len_bytes(buf: Buffer, data: bytes) -> None:
    buf.push_uint_var(len(data))
    buf.push_bytes(data)


def size_len_bytes(data: bytes) -> int:
    return size_uint_var(len(data)) + len(data)
