"""Relay frame codec (wire doc §5.3-5.5): one relay frame per binary WebSocket message.

A frame is its type as a QUIC varint (every current type fits one byte) followed by the body:

====  ==========================  =====  ==================================================
type  name                        dir    body
====  ==========================  =====  ==================================================
0     ServerChallenge             r→c    16 random bytes
1     ClientAuth                  c→r    public key (32) ‖ 0x40 ‖ signature (64)
2     ServerConfirmsAuth          r→c    empty
3     ServerDeniesAuth            r→c    LEB128 length ‖ UTF-8 reason
4     ClientToRelayDatagram       c→r    dst id (32) ‖ ECN (1) ‖ one datagram
5     ClientToRelayDatagramBatch  c→r    dst id (32) ‖ ECN (1) ‖ segment size (u16 BE) ‖ data
6     RelayToClientDatagram       r→c    src id (32) ‖ ECN (1) ‖ one datagram
7     RelayToClientDatagramBatch  r→c    src id (32) ‖ ECN (1) ‖ segment size (u16 BE) ‖ data
8     EndpointGone                r→c    endpoint id (32)
9     Ping                        both   8 bytes
10    Pong                        both   the 8 bytes of the Ping
11    Health                      r→c    UTF-8 text — v1 only
12    Restarting                  r→c    reconnect_in ms (u32 BE) ‖ try_for ms (u32 BE)
13    Status                      r→c    1 byte (0 healthy, 1 same id connected, 2 rate
                                         limited, anything else tolerated) — v2 only
====  ==========================  =====  ==================================================

The handshake bodies (0-3) are postcard encodings, which is where the LEB128 lengths come from.
Decoders raise :class:`RelayProtocolError` on anything malformed and never anything else.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

from ...base.key import EndpointId, PublicKey
from ...errors import DecodeError, IrohError, RelayError
from .version import ProtocolVersion

__all__ = [
    "MAX_FRAME_SIZE",
    "MAX_PACKET_SIZE",
    "ClientAuth",
    "ClientToRelayDatagrams",
    "ClientToRelayMsg",
    "Datagrams",
    "EndpointGone",
    "FrameType",
    "Health",
    "Ping",
    "Pong",
    "RelayProtocolError",
    "RelayToClientDatagrams",
    "RelayToClientMsg",
    "Restarting",
    "ServerChallenge",
    "ServerConfirmsAuth",
    "ServerDeniesAuth",
    "Status",
    "StatusCode",
    "decode_client_msg",
    "decode_relay_msg",
    "encode_client_msg",
    "encode_relay_msg",
    "encoded_len",
    "relay_datagrams_frame",
]

# Largest body (after the type tag) of any frame; bigger ones are refused (protos/relay.rs).
MAX_PACKET_SIZE: Final = 64 * 1024
# Largest WebSocket message either side accepts; also the smallest rate-limit burst.
MAX_FRAME_SIZE: Final = 1024 * 1024
CHALLENGE_LENGTH: Final = 16
KEY_LENGTH: Final = 32
SIGNATURE_LENGTH: Final = 64
PING_DATA_LENGTH: Final = 8
# Longest ServerDeniesAuth reason we put on the wire; a reason is for humans.
MAX_DENY_REASON: Final = 1024
# Decoding an Ed25519 point costs ~100 µs in pure Python, far more than forwarding a datagram,
# so decoded ids are remembered. The bound keeps a flood of random ids from growing it.
KEY_CACHE_MAX: Final = 4096

_DATAGRAM_HEADER: Final = KEY_LENGTH + 1
_BATCH_HEADER: Final = KEY_LENGTH + 3


class RelayProtocolError(RelayError, DecodeError):
    """A relay frame is malformed, unknown, too large or not allowed in this version."""


class FrameType(enum.IntEnum):
    """Relay frame type tags (``protos/common.rs``)."""

    SERVER_CHALLENGE = 0
    CLIENT_AUTH = 1
    SERVER_CONFIRMS_AUTH = 2
    SERVER_DENIES_AUTH = 3
    CLIENT_TO_RELAY_DATAGRAM = 4
    CLIENT_TO_RELAY_DATAGRAM_BATCH = 5
    RELAY_TO_CLIENT_DATAGRAM = 6
    RELAY_TO_CLIENT_DATAGRAM_BATCH = 7
    ENDPOINT_GONE = 8
    PING = 9
    PONG = 10
    HEALTH = 11
    RESTARTING = 12
    STATUS = 13


class StatusCode(enum.IntEnum):
    """Known values of the :class:`Status` byte; others are kept as plain ints."""

    HEALTHY = 0
    SAME_ENDPOINT_ID_CONNECTED = 1
    RATE_LIMITED = 2


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerChallenge:
    """Relay → client: sign this to prove your key (frame 0)."""

    challenge: bytes
    """16 random bytes."""

    def __post_init__(self) -> None:
        if len(self.challenge) != CHALLENGE_LENGTH:
            raise RelayProtocolError(f"challenge must be {CHALLENGE_LENGTH} bytes")


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """Client → relay: the client's key and its signature over the challenge (frame 1)."""

    public_key: EndpointId
    """The client's EndpointId."""
    signature: bytes
    """64-byte Ed25519 signature over :func:`~.handshake.challenge_message`."""

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_LENGTH:
            raise RelayProtocolError(f"signature must be {SIGNATURE_LENGTH} bytes")


@dataclass(frozen=True, slots=True)
class ServerConfirmsAuth:
    """Relay → client: the handshake succeeded (frame 2)."""


@dataclass(frozen=True, slots=True)
class ServerDeniesAuth:
    """Relay → client: the handshake failed (frame 3); the relay closes afterwards."""

    reason: str
    """Human-readable reason, e.g. ``"signature invalid"`` or ``"not authorized"``."""


@dataclass(frozen=True, slots=True)
class Datagrams:
    """One datagram, or a GSO-style batch of them, with its ECN codepoint (like a QUIC transmit).

    A batch holds datagrams of exactly ``segment_size`` bytes each; only the last may be shorter.
    ``segment_size`` is None for a single datagram.
    """

    ecn: int
    """ECN codepoint: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE."""
    segment_size: int | None
    """Size of each datagram in a batch, or None for a single datagram."""
    contents: bytes
    """The datagram bytes, concatenated for a batch."""

    def __post_init__(self) -> None:
        if not 0 <= self.ecn <= 3:
            raise RelayProtocolError(f"ECN codepoint out of range: {self.ecn}")
        if self.segment_size is not None and not 0 < self.segment_size <= 0xFFFF:
            raise RelayProtocolError(f"segment size out of range: {self.segment_size}")

    def split(self) -> list[bytes]:
        """The individual datagrams of this batch (a one-element list for a single datagram)."""
        size = self.segment_size
        data = self.contents
        if size is None or len(data) <= size:
            return [data]
        return [data[i : i + size] for i in range(0, len(data), size)]

    def __repr__(self) -> str:
        return (
            f"Datagrams(ecn={self.ecn}, segment_size={self.segment_size}, len={len(self.contents)})"
        )


@dataclass(frozen=True, slots=True)
class ClientToRelayDatagrams:
    """Client → relay: forward these datagrams to ``dst`` (frames 4 and 5)."""

    dst: EndpointId
    """The receiving endpoint."""
    datagrams: Datagrams
    """The payload, forwarded unchanged."""


@dataclass(frozen=True, slots=True)
class RelayToClientDatagrams:
    """Relay → client: datagrams that ``src`` sent to this client (frames 6 and 7)."""

    src: EndpointId
    """The sending endpoint."""
    datagrams: Datagrams
    """The payload as the sender gave it."""


@dataclass(frozen=True, slots=True)
class EndpointGone:
    """Relay → client: an endpoint that sent to you has left the relay (frame 8)."""

    endpoint_id: EndpointId
    """The endpoint that disconnected."""


@dataclass(frozen=True, slots=True)
class Ping:
    """Either direction: answer with a :class:`Pong` carrying the same 8 bytes (frame 9)."""

    data: bytes
    """8 opaque bytes."""

    def __post_init__(self) -> None:
        if len(self.data) != PING_DATA_LENGTH:
            raise RelayProtocolError(f"ping data must be {PING_DATA_LENGTH} bytes")


@dataclass(frozen=True, slots=True)
class Pong:
    """Either direction: the answer to a :class:`Ping` (frame 10)."""

    data: bytes
    """The 8 bytes of the ping being answered."""

    def __post_init__(self) -> None:
        if len(self.data) != PING_DATA_LENGTH:
            raise RelayProtocolError(f"pong data must be {PING_DATA_LENGTH} bytes")


@dataclass(frozen=True, slots=True)
class Health:
    """Relay → client, protocol v1 only: a connection problem (frame 11)."""

    problem: str
    """Description of the problem."""


@dataclass(frozen=True, slots=True)
class Restarting:
    """Relay → client: the relay is going away; reconnect after a while (frame 12)."""

    reconnect_in_ms: int
    """Advisory wait before reconnecting, in milliseconds."""
    try_for_ms: int
    """Advisory time to keep trying to reconnect, in milliseconds."""

    def __post_init__(self) -> None:
        for value in (self.reconnect_in_ms, self.try_for_ms):
            if not 0 <= value <= 0xFFFFFFFF:
                raise RelayProtocolError(f"restart duration out of range: {value}")


@dataclass(frozen=True, slots=True)
class Status:
    """Relay → client, protocol v2+: connection state (frame 13); see :class:`StatusCode`."""

    code: int
    """A :class:`StatusCode` or, for values this version does not know, the raw byte."""

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFF:
            raise RelayProtocolError(f"status code out of range: {self.code}")


ClientToRelayMsg: TypeAlias = ClientAuth | ClientToRelayDatagrams | Ping | Pong
"""Everything a relay receives from a client."""

RelayToClientMsg: TypeAlias = (
    ServerChallenge
    | ServerConfirmsAuth
    | ServerDeniesAuth
    | RelayToClientDatagrams
    | EndpointGone
    | Ping
    | Pong
    | Health
    | Restarting
    | Status
)
"""Everything a client receives from a relay."""


# --- primitives -------------------------------------------------------------------------------

_key_cache: dict[bytes, PublicKey] = {}


def _key(raw: bytes) -> PublicKey:
    key = _key_cache.get(raw)
    if key is not None:
        return key
    try:
        key = PublicKey.from_bytes(raw)
    except IrohError as exc:
        raise RelayProtocolError(f"invalid endpoint id: {exc}") from None
    if len(_key_cache) >= KEY_CACHE_MAX:
        # Oldest first: dicts keep insertion order.
        del _key_cache[next(iter(_key_cache))]
    _key_cache[raw] = key
    return key


def _read_frame_type(data: bytes) -> tuple[int, int]:
    """Decode the QUIC varint tag; returns (tag, body offset)."""
    if not data:
        raise RelayProtocolError("empty frame")
    first = data[0]
    length = 1 << (first >> 6)
    if len(data) < length:
        raise RelayProtocolError("truncated frame type")
    value = first & 0x3F
    for i in range(1, length):
        value = (value << 8) | data[i]
    return value, length


def _read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    """Postcard varint (u32 range) at ``pos``; returns (value, new position)."""
    value = 0
    for shift in range(0, 35, 7):
        if pos >= len(data):
            raise RelayProtocolError("truncated length")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value > 0xFFFFFFFF:
                raise RelayProtocolError("length out of range")
            return value, pos
    raise RelayProtocolError("length varint too long")


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_datagrams(body: bytes, batch: bool) -> tuple[PublicKey, Datagrams]:
    if len(body) < (_BATCH_HEADER if batch else _DATAGRAM_HEADER):
        raise RelayProtocolError("datagram frame too short")
    key = _key(body[:KEY_LENGTH])
    ecn = body[KEY_LENGTH]
    # Like noq's EcnCodepoint::from_bits: an unknown codepoint reads as Not-ECT.
    if ecn > 3:
        ecn = 0
    if batch:
        size = (body[KEY_LENGTH + 1] << 8) | body[KEY_LENGTH + 2]
        # A zero segment size means "not a batch".
        return key, Datagrams(ecn, size or None, body[_BATCH_HEADER:])
    return key, Datagrams(ecn, None, body[_DATAGRAM_HEADER:])


def _encode_datagrams(single: int, key: PublicKey, dgrams: Datagrams) -> bytes:
    if dgrams.segment_size is None:
        return b"".join((bytes((single,)), key.to_bytes(), bytes((dgrams.ecn,)), dgrams.contents))
    return b"".join(
        (
            bytes((single + 1,)),
            key.to_bytes(),
            struct.pack(">BH", dgrams.ecn, dgrams.segment_size),
            dgrams.contents,
        )
    )


def _fixed(body: bytes, length: int, name: str) -> bytes:
    if len(body) != length:
        raise RelayProtocolError(f"{name} body must be {length} bytes, got {len(body)}")
    return body


def _split(data: bytes) -> tuple[int, bytes]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RelayProtocolError("frame must be bytes")
    data = bytes(data)
    tag, offset = _read_frame_type(data)
    body = data[offset:]
    if len(body) > MAX_PACKET_SIZE:
        raise RelayProtocolError(f"frame body too large: {len(body)} bytes")
    return tag, body


# --- client → relay ---------------------------------------------------------------------------


def encode_client_msg(msg: ClientToRelayMsg) -> bytes:
    """Encode a message a client sends to the relay."""
    if isinstance(msg, ClientToRelayDatagrams):
        return _encode_datagrams(FrameType.CLIENT_TO_RELAY_DATAGRAM, msg.dst, msg.datagrams)
    if isinstance(msg, Ping):
        return bytes((FrameType.PING,)) + msg.data
    if isinstance(msg, Pong):
        return bytes((FrameType.PONG,)) + msg.data
    if isinstance(msg, ClientAuth):
        return (
            bytes((FrameType.CLIENT_AUTH,))
            + msg.public_key.to_bytes()
            + _leb128(SIGNATURE_LENGTH)
            + msg.signature
        )
    raise TypeError(f"not a client-to-relay message: {msg!r}")


def decode_client_msg(data: bytes, version: ProtocolVersion) -> ClientToRelayMsg:
    """Decode a frame a relay received from a client.

    Raises :class:`RelayProtocolError` for anything malformed, unknown or relay-to-client only.
    """
    del version  # no client frame differs between v1 and v2
    tag, body = _split(data)
    if tag == FrameType.CLIENT_TO_RELAY_DATAGRAM or tag == FrameType.CLIENT_TO_RELAY_DATAGRAM_BATCH:
        key, dgrams = _decode_datagrams(body, tag == FrameType.CLIENT_TO_RELAY_DATAGRAM_BATCH)
        return ClientToRelayDatagrams(key, dgrams)
    if tag == FrameType.PING:
        return Ping(_fixed(body, PING_DATA_LENGTH, "ping"))
    if tag == FrameType.PONG:
        return Pong(_fixed(body, PING_DATA_LENGTH, "pong"))
    if tag == FrameType.CLIENT_AUTH:
        if len(body) < KEY_LENGTH:
            raise RelayProtocolError("client auth too short")
        key = _key(body[:KEY_LENGTH])
        length, pos = _read_leb128(body, KEY_LENGTH)
        if length != SIGNATURE_LENGTH or len(body) < pos + length:
            raise RelayProtocolError("client auth signature must be 64 bytes")
        # postcard tolerates trailing bytes; so do we.
        return ClientAuth(key, body[pos : pos + length])
    raise RelayProtocolError(f"unexpected frame type {tag} from a client")


# --- relay → client ---------------------------------------------------------------------------


def encode_relay_msg(msg: RelayToClientMsg, version: ProtocolVersion) -> bytes:
    """Encode a message a relay sends to a client speaking ``version``.

    Raises :class:`RelayProtocolError` for a frame the version does not have
    (``Health`` on v2, ``Status`` on v1).
    """
    if isinstance(msg, RelayToClientDatagrams):
        return _encode_datagrams(FrameType.RELAY_TO_CLIENT_DATAGRAM, msg.src, msg.datagrams)
    if isinstance(msg, Ping):
        return bytes((FrameType.PING,)) + msg.data
    if isinstance(msg, Pong):
        return bytes((FrameType.PONG,)) + msg.data
    if isinstance(msg, EndpointGone):
        return bytes((FrameType.ENDPOINT_GONE,)) + msg.endpoint_id.to_bytes()
    if isinstance(msg, Status):
        if version == ProtocolVersion.V1:
            raise RelayProtocolError("Status frames do not exist in iroh-relay-v1")
        return bytes((FrameType.STATUS, msg.code))
    if isinstance(msg, Health):
        if version != ProtocolVersion.V1:
            raise RelayProtocolError(f"Health frames do not exist in {version}")
        return bytes((FrameType.HEALTH,)) + msg.problem.encode()
    if isinstance(msg, Restarting):
        return bytes((FrameType.RESTARTING,)) + struct.pack(
            ">II", msg.reconnect_in_ms, msg.try_for_ms
        )
    if isinstance(msg, ServerChallenge):
        return bytes((FrameType.SERVER_CHALLENGE,)) + msg.challenge
    if isinstance(msg, ServerConfirmsAuth):
        return bytes((FrameType.SERVER_CONFIRMS_AUTH,))
    if isinstance(msg, ServerDeniesAuth):
        reason = msg.reason.encode()[:MAX_DENY_REASON].decode(errors="ignore").encode()
        return bytes((FrameType.SERVER_DENIES_AUTH,)) + _leb128(len(reason)) + reason
    raise TypeError(f"not a relay-to-client message: {msg!r}")


def decode_relay_msg(data: bytes, version: ProtocolVersion) -> RelayToClientMsg:
    """Decode a frame a client received from a relay speaking ``version``.

    Raises :class:`RelayProtocolError` for anything malformed, unknown, client-to-relay only,
    or not part of ``version``.
    """
    tag, body = _split(data)
    if tag == FrameType.RELAY_TO_CLIENT_DATAGRAM or tag == FrameType.RELAY_TO_CLIENT_DATAGRAM_BATCH:
        key, dgrams = _decode_datagrams(body, tag == FrameType.RELAY_TO_CLIENT_DATAGRAM_BATCH)
        return RelayToClientDatagrams(key, dgrams)
    if tag == FrameType.PING:
        return Ping(_fixed(body, PING_DATA_LENGTH, "ping"))
    if tag == FrameType.PONG:
        return Pong(_fixed(body, PING_DATA_LENGTH, "pong"))
    if tag == FrameType.ENDPOINT_GONE:
        return EndpointGone(_key(_fixed(body, KEY_LENGTH, "endpoint gone")))
    if tag == FrameType.STATUS:
        if version == ProtocolVersion.V1:
            raise RelayProtocolError("Status frame received on iroh-relay-v1")
        if not body:
            raise RelayProtocolError("empty Status frame")
        code = body[0]
        return Status(StatusCode(code) if code in _STATUS_VALUES else code)
    if tag == FrameType.HEALTH:
        if version != ProtocolVersion.V1:
            raise RelayProtocolError(f"Health frame received on {version}")
        return Health(_utf8(body))
    if tag == FrameType.RESTARTING:
        reconnect_in, try_for = struct.unpack(">II", _fixed(body, 8, "restarting"))
        return Restarting(reconnect_in, try_for)
    if tag == FrameType.SERVER_CHALLENGE:
        # postcard tolerates trailing bytes.
        if len(body) < CHALLENGE_LENGTH:
            raise RelayProtocolError("challenge too short")
        return ServerChallenge(body[:CHALLENGE_LENGTH])
    if tag == FrameType.SERVER_CONFIRMS_AUTH:
        return ServerConfirmsAuth()
    if tag == FrameType.SERVER_DENIES_AUTH:
        length, pos = _read_leb128(body, 0)
        if len(body) < pos + length:
            raise RelayProtocolError("deny reason truncated")
        return ServerDeniesAuth(_utf8(body[pos : pos + length]))
    raise RelayProtocolError(f"unexpected frame type {tag} from a relay")


_STATUS_VALUES: Final = frozenset(int(c) for c in StatusCode)


def _utf8(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise RelayProtocolError("text is not valid UTF-8") from None


def encoded_len(msg: ClientToRelayMsg | RelayToClientMsg) -> int:
    """Bytes the encoded frame occupies (all current types have a one-byte tag)."""
    if isinstance(msg, ClientToRelayDatagrams | RelayToClientDatagrams):
        dgrams = msg.datagrams
        return 1 + _DATAGRAM_HEADER + (2 if dgrams.segment_size else 0) + len(dgrams.contents)
    if isinstance(msg, Ping | Pong):
        return 1 + PING_DATA_LENGTH
    if isinstance(msg, EndpointGone):
        return 1 + KEY_LENGTH
    if isinstance(msg, Status):
        return 2
    if isinstance(msg, Restarting):
        return 9
    if isinstance(msg, ServerChallenge):
        return 1 + CHALLENGE_LENGTH
    if isinstance(msg, ServerConfirmsAuth):
        return 1
    if isinstance(msg, ClientAuth):
        return 1 + KEY_LENGTH + 1 + SIGNATURE_LENGTH
    if isinstance(msg, Health):
        return 1 + len(msg.problem.encode())
    if isinstance(msg, ServerDeniesAuth):
        reason = msg.reason.encode()[:MAX_DENY_REASON].decode(errors="ignore").encode()
        return 1 + len(_leb128(len(reason))) + len(reason)
    raise TypeError(f"not a relay message: {msg!r}")


def relay_datagrams_frame(src: bytes, datagrams: Datagrams) -> bytes:
    """Fast path for the relay: the frame 6/7 carrying ``datagrams`` from raw id ``src``.

    Same bytes as ``encode_relay_msg(RelayToClientDatagrams(src_key, datagrams), v)`` without
    building a :class:`PublicKey` for the source.
    """
    if datagrams.segment_size is None:
        return b"".join(
            (
                bytes((FrameType.RELAY_TO_CLIENT_DATAGRAM,)),
                src,
                bytes((datagrams.ecn,)),
                datagrams.contents,
            )
        )
    return b"".join(
        (
            bytes((FrameType.RELAY_TO_CLIENT_DATAGRAM_BATCH,)),
            src,
            struct.pack(">BH", datagrams.ecn, datagrams.segment_size),
            datagrams.contents,
        )
    )
