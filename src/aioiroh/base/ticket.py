"""``EndpointTicket``: an :class:`EndpointAddr` as one copy-pasteable string (wire doc §7.2).

Text form: ``"endpoint"`` + lowercase unpadded RFC 4648 base32 of a postcard body::

    00                      wire-format variant (Variant1)
    <32 bytes>              endpoint id
    varint n                number of transport addresses
    n x addr:
      varint 0, varint len, <url bytes>                   relay
      varint 1, 00, <4 bytes>, varint port                IPv4 socket address
      varint 1, 01, <16 bytes>, varint port               IPv6 socket address

Encoding emits addresses in Rust order so our tickets are byte-identical to Rust's. Decoding
accepts any order and duplicates, is case-insensitive, and raises :class:`TicketParseError`
for anything malformed. Differences from Rust's decoder, on purpose:

* trailing bytes after the body are rejected (Rust's postcard ignores them; no Rust encoder
  produces them);
* a ``Custom`` transport address (variant 2) is rejected with a clear error: its encoding
  changed between iroh releases, and we have no custom transports to hand it to.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from ..errors import DecodeError
from ._postcard import Reader, Writer
from ._z32 import b32_decode, b32_encode
from .endpoint_addr import EndpointAddr, TransportAddr
from .key import KEY_LENGTH, PublicKey
from .relay_url import RelayUrl

__all__ = ["EndpointTicket", "TicketParseError"]

KIND: Final = "endpoint"
# Tickets are pasted by humans and carried in small records; refuse absurd text up front so a
# hostile string cannot make us decode megabytes. Rust has no limit; real tickets are < 1 KiB.
MAX_TICKET_LEN: Final = 64 * 1024

_VARIANT1: Final = 0
_ADDR_RELAY: Final = 0
_ADDR_IP: Final = 1
_ADDR_CUSTOM: Final = 2
_IP_V4: Final = 0
_IP_V6: Final = 1


class TicketParseError(DecodeError):
    """The text or bytes are not a valid endpoint ticket."""


def _encode_addr(w: Writer, addr: TransportAddr) -> None:
    url = addr.relay_url
    if url is not None:
        w.varint(_ADDR_RELAY)
        w.str_(str(url))
        return
    ip, port = addr.ip_addr, addr.port
    assert ip is not None and port is not None
    w.varint(_ADDR_IP)
    # Flow info and scope id are not part of the wire form (as in Rust's serde impl).
    w.u8(_IP_V4 if isinstance(ip, ipaddress.IPv4Address) else _IP_V6)
    w.raw(ip.packed)
    w.varint(port)


def _decode_addr(r: Reader) -> TransportAddr:
    variant = r.u32()
    if variant == _ADDR_RELAY:
        return TransportAddr.relay(RelayUrl(r.str_()))
    if variant == _ADDR_IP:
        family = r.u32()
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address
        if family == _IP_V4:
            ip = ipaddress.IPv4Address(r.take(4))
        elif family == _IP_V6:
            ip = ipaddress.IPv6Address(r.take(16))
        else:
            raise TicketParseError(f"unknown IP address family {family}")
        return TransportAddr(ip=ip, port=r.u16())
    if variant == _ADDR_CUSTOM:
        raise TicketParseError("custom transport addresses are not supported")
    raise TicketParseError(f"unknown transport address variant {variant}")


class EndpointTicket:
    """A ticket holding one :class:`EndpointAddr`.

    ``str(ticket)`` is the shareable text; :meth:`parse` reads it back (any case).
    """

    __slots__ = ("_addr",)

    def __init__(self, addr: EndpointAddr) -> None:
        if not isinstance(addr, EndpointAddr):
            raise TypeError(f"expected an EndpointAddr, not {type(addr).__name__}")
        self._addr = addr

    @property
    def addr(self) -> EndpointAddr:
        """The address this ticket carries."""
        return self._addr

    def endpoint_addr(self) -> EndpointAddr:
        """The address this ticket carries (Rust's spelling)."""
        return self._addr

    def to_bytes(self) -> bytes:
        """The postcard body (without the ``endpoint`` prefix or base32)."""
        w = Writer()
        w.varint(_VARIANT1)
        w.raw(self._addr.id.to_bytes())
        addrs = self._addr.addrs
        w.varint(len(addrs))
        for addr in addrs:
            _encode_addr(w, addr)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EndpointTicket:
        """Decode a postcard body; raise :class:`TicketParseError` if malformed."""
        try:
            r = Reader(data)
            version = r.u32()
            if version != _VARIANT1:
                raise TicketParseError(f"unknown ticket version {version}")
            endpoint_id = PublicKey.from_bytes(r.take(KEY_LENGTH))
            addrs = [_decode_addr(r) for _ in range(r.length())]
            r.finish()
        except TicketParseError:
            raise
        except DecodeError as exc:
            raise TicketParseError(f"invalid endpoint ticket: {exc}") from exc
        return cls(EndpointAddr.from_parts(endpoint_id, addrs))

    @classmethod
    def parse(cls, text: str) -> EndpointTicket:
        """Parse ``endpoint<base32>`` text (case-insensitive)."""
        if not isinstance(text, str):
            raise TicketParseError("ticket must be a str")
        if len(text) > MAX_TICKET_LEN:
            raise TicketParseError(f"ticket longer than {MAX_TICKET_LEN} characters")
        if text[: len(KIND)].lower() != KIND:
            raise TicketParseError(f"not an endpoint ticket: {text[:16]!r}")
        body = text[len(KIND) :]
        if not body.isascii() or not body.isalnum():
            raise TicketParseError("invalid base32 in ticket")
        try:
            data = b32_decode(body)
        except DecodeError as exc:
            raise TicketParseError(f"invalid base32 in ticket: {exc}") from exc
        return cls.from_bytes(data)

    def __str__(self) -> str:
        return KIND + b32_encode(self.to_bytes())

    def __repr__(self) -> str:
        return f"EndpointTicket({self._addr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EndpointTicket) and other._addr == self._addr

    def __hash__(self) -> int:
        return hash(self._addr)
