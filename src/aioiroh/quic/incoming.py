"""Checks on a stranger's first datagram before a server creates any connection state.

Initial keys derive from the client's chosen destination CID (RFC 9001 §5.2), so anybody can
build a valid Initial; but a datagram that does not even decrypt with them (junk with a valid
long header) is dropped here at the cost of one AEAD open, instead of holding a pending
handshake slot. Sans-I/O.
"""

from __future__ import annotations

from aioquic.quic.packet import QuicPacketType, pull_quic_header

from ._aioquic import Buffer, CryptoError
from .packet_protection import PacketProtection, PacketProtectionError

__all__ = ["initial_decrypts"]


def initial_decrypts(data: bytes, dcid: bytes, *, cid_length: int) -> bool:
    """Whether the first packet of ``data`` is a client Initial that opens with its keys."""
    try:
        buf = Buffer(data=bytes(data))
        header = pull_quic_header(buf, host_cid_length=cid_length)
        if header.packet_type != QuicPacketType.INITIAL or header.destination_cid != dcid:
            return False
        pn_offset = buf.tell()
        packet = bytes(data[: header.packet_length])
        pp = PacketProtection.initial(dcid, is_client=False)
        _header, payload, _pn = pp.open(packet, pn_offset, 0, 0)
    except (PacketProtectionError, CryptoError, ValueError):
        return False
    return bool(payload)
