"""NAT-PMP (RFC 6886) messages, sans-I/O.

Requests are built as bytes; responses are decoded from bytes and checked against what was
asked. The client sends to the gateway's UDP port 5351.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

from .errors import PortMapDecodeError, PortMapRefused

__all__ = [
    "SERVER_PORT",
    "VERSION",
    "ExternalAddressResponse",
    "MapResponse",
    "Opcode",
    "ResultCode",
    "decode_response",
    "encode_external_address_request",
    "encode_map_request",
]

SERVER_PORT = 5351
VERSION = 0
#: The response opcode is the request opcode plus 128 (RFC 6886 §3.2).
RESPONSE_BIT = 0x80
#: A mapping response is the largest NAT-PMP message (§3.3).
MAX_RESPONSE_SIZE = 16


class Opcode(IntEnum):
    EXTERNAL_ADDRESS = 0
    MAP_UDP = 1
    MAP_TCP = 2


class ResultCode(IntEnum):
    SUCCESS = 0
    UNSUPPORTED_VERSION = 1
    NOT_AUTHORIZED = 2
    NETWORK_FAILURE = 3
    OUT_OF_RESOURCES = 4
    UNSUPPORTED_OPCODE = 5


@dataclass(frozen=True, slots=True)
class ExternalAddressResponse:
    epoch: int
    external_ip: str


@dataclass(frozen=True, slots=True)
class MapResponse:
    opcode: Opcode
    epoch: int
    internal_port: int
    external_port: int
    lifetime: int


def encode_external_address_request() -> bytes:
    """The 2-byte "determine external address" request (§3.2)."""
    return bytes((VERSION, Opcode.EXTERNAL_ADDRESS))


def encode_map_request(
    internal_port: int, external_port: int, lifetime: int, *, opcode: Opcode = Opcode.MAP_UDP
) -> bytes:
    """A 12-byte mapping request (§3.3); ``lifetime=0`` with ``external_port=0`` deletes."""
    return struct.pack("!BBHHHI", VERSION, opcode, 0, internal_port, external_port, lifetime)


def decode_response(data: bytes) -> ExternalAddressResponse | MapResponse:
    """Decode a gateway's answer; raises :class:`PortMapRefused` on a non-zero result code."""
    if len(data) < 4 or len(data) > MAX_RESPONSE_SIZE:
        raise PortMapDecodeError(f"NAT-PMP: {len(data)}-byte message")
    version, op, result = struct.unpack_from("!BBH", data)
    if version != VERSION:
        raise PortMapDecodeError(f"NAT-PMP: version {version}")
    if not op & RESPONSE_BIT:
        raise PortMapDecodeError("NAT-PMP: not a response")
    try:
        opcode = Opcode(op & ~RESPONSE_BIT)
    except ValueError:
        raise PortMapDecodeError(f"NAT-PMP: opcode {op}") from None
    if result != ResultCode.SUCCESS:
        name = ResultCode(result).name if result in ResultCode._value2member_map_ else "unknown"
        raise PortMapRefused(f"NAT-PMP: result {result} ({name})", result)
    if opcode is Opcode.EXTERNAL_ADDRESS:
        if len(data) != 12:
            raise PortMapDecodeError(f"NAT-PMP: {len(data)}-byte address response")
        (epoch,) = struct.unpack_from("!I", data, 4)
        return ExternalAddressResponse(epoch, str(ipaddress.IPv4Address(data[8:12])))
    if len(data) != 16:
        raise PortMapDecodeError(f"NAT-PMP: {len(data)}-byte mapping response")
    epoch, internal, external, lifetime = struct.unpack_from("!IHHI", data, 4)
    return MapResponse(opcode, epoch, internal, external, lifetime)
