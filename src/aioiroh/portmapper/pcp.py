"""PCP (RFC 6887) ANNOUNCE and MAP messages, sans-I/O.

Every MAP request carries a random 12-byte nonce; the answer must echo it, the protocol and
the internal port, or it is not ours. Addresses travel as 16 bytes (IPv4 as ``::ffff:a.b.c.d``).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

from .errors import PortMapDecodeError, PortMapError, PortMapRefused

__all__ = [
    "MAX_MESSAGE_SIZE",
    "SERVER_PORT",
    "VERSION",
    "MapData",
    "Opcode",
    "Response",
    "ResultCode",
    "decode_response",
    "encode_announce_request",
    "encode_map_request",
]

SERVER_PORT = 5351
VERSION = 2
#: RFC 6887 §7: no PCP message is longer than 1100 bytes.
MAX_MESSAGE_SIZE = 1100
HEADER_SIZE = 24
MAP_DATA_SIZE = 36
RESPONSE_BIT = 0x80
PROTO_UDP = 17
PROTO_TCP = 6


class Opcode(IntEnum):
    ANNOUNCE = 0
    MAP = 1
    PEER = 2


class ResultCode(IntEnum):
    SUCCESS = 0
    UNSUPP_VERSION = 1
    NOT_AUTHORIZED = 2
    MALFORMED_REQUEST = 3
    UNSUPP_OPCODE = 4
    UNSUPP_OPTION = 5
    MALFORMED_OPTION = 6
    NETWORK_FAILURE = 7
    NO_RESOURCES = 8
    UNSUPP_PROTOCOL = 9
    USER_EX_QUOTA = 10
    CANNOT_PROVIDE_EXTERNAL = 11
    ADDRESS_MISMATCH = 12
    EXCESSIVE_REMOTE_PEERS = 13


@dataclass(frozen=True, slots=True)
class MapData:
    nonce: bytes
    protocol: int
    internal_port: int
    external_port: int
    external_ip: str


@dataclass(frozen=True, slots=True)
class Response:
    opcode: Opcode
    result: int
    lifetime: int
    epoch: int
    map: MapData | None


def _addr16(ip: str) -> bytes:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


def _addr_from16(raw: bytes) -> str:
    addr = ipaddress.IPv6Address(raw)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped is not None else str(addr)


def _header(opcode: Opcode, lifetime: int, client_ip: str) -> bytes:
    return struct.pack("!BBHI", VERSION, opcode, 0, lifetime) + _addr16(client_ip)


def encode_announce_request(client_ip: str) -> bytes:
    """A 24-byte ANNOUNCE (§14.1): the cheap "is a PCP server there?" probe."""
    return _header(Opcode.ANNOUNCE, 0, client_ip)


def encode_map_request(
    nonce: bytes,
    client_ip: str,
    internal_port: int,
    lifetime: int,
    *,
    protocol: int = PROTO_UDP,
    external_port: int = 0,
    external_ip: str | None = None,
) -> bytes:
    """A 60-byte MAP request (§11.1); ``lifetime=0`` with the same nonce deletes the mapping."""
    if len(nonce) != 12:
        raise PortMapError("PCP nonce is 12 bytes")
    suggested = external_ip or ("0.0.0.0" if ":" not in client_ip else "::")
    data = (
        nonce + struct.pack("!B3xHH", protocol, internal_port, external_port) + _addr16(suggested)
    )
    return _header(Opcode.MAP, lifetime, client_ip) + data


def decode_response(data: bytes) -> Response:
    """Decode a PCP response; raises :class:`PortMapRefused` on a non-zero result code.

    A NAT-PMP-only server answers a version 2 request with a NAT-PMP "unsupported version"
    message (version 0, result 1); that is reported as refused, code ``UNSUPP_VERSION``.
    """
    if len(data) < 4 or len(data) > MAX_MESSAGE_SIZE:
        raise PortMapDecodeError(f"PCP: {len(data)}-byte message")
    if data[0] == 0 and data[1] & RESPONSE_BIT and data[2:4] == b"\x00\x01":
        raise PortMapRefused("PCP: server speaks only NAT-PMP", ResultCode.UNSUPP_VERSION)
    if len(data) < HEADER_SIZE or len(data) % 4:
        raise PortMapDecodeError(f"PCP: {len(data)}-byte message")
    version, op, _reserved, result, lifetime, epoch = struct.unpack_from("!BBBBII", data)
    if version != VERSION:
        raise PortMapDecodeError(f"PCP: version {version}")
    if not op & RESPONSE_BIT:
        raise PortMapDecodeError("PCP: not a response")
    try:
        opcode = Opcode(op & ~RESPONSE_BIT)
    except ValueError:
        raise PortMapDecodeError(f"PCP: opcode {op & ~RESPONSE_BIT}") from None
    if result != ResultCode.SUCCESS:
        name = ResultCode(result).name if result in ResultCode._value2member_map_ else "unknown"
        raise PortMapRefused(f"PCP: result {result} ({name})", result)
    map_data: MapData | None = None
    if opcode is Opcode.MAP:
        if len(data) < HEADER_SIZE + MAP_DATA_SIZE:
            raise PortMapDecodeError("PCP: MAP response without MAP data")
        body = data[HEADER_SIZE : HEADER_SIZE + MAP_DATA_SIZE]
        proto, internal, external = struct.unpack_from("!B3xHH", body, 12)
        map_data = MapData(bytes(body[:12]), proto, internal, external, _addr_from16(body[20:36]))
    # Options (TLVs after the opcode data) are not needed for MAP; their total is bounded by
    # MAX_MESSAGE_SIZE above, so they are skipped rather than parsed.
    return Response(opcode, result, lifetime, epoch, map_data)
