"""Endpoint addressing: :class:`TransportAddr` and :class:`EndpointAddr` (wire doc §7.1).

An :class:`EndpointAddr` is an endpoint's id plus a set of transport addresses through which
it may be reachable: relay URLs and IP socket addresses. Values are immutable and compare by
value; addresses sort in Rust's ``Ord`` order (relays before IPs, relays by URL string, IPv4
before IPv6, then by address and port) so tickets come out byte-identical to Rust's.

Socket addresses are exposed as ``(host, port)`` tuples with the host in canonical text form
(IPv6 without brackets) so they can be handed straight to asyncio's socket calls.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final, Literal, TypeAlias

from ..errors import DecodeError
from .key import PublicKey
from .relay_url import RelayUrl

__all__ = [
    "AddrParseError",
    "EndpointAddr",
    "IpAddress",
    "SocketAddr",
    "SocketAddrLike",
    "TransportAddr",
    "format_socket_addr",
    "parse_socket_addr",
]

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
SocketAddr: TypeAlias = tuple[str, int]
"""``(host, port)``: host is canonical IP text (IPv6 without brackets, may carry ``%scope``)."""
SocketAddrLike: TypeAlias = (
    str | tuple[str, int] | tuple[str, int, int, int] | tuple[IpAddress, int]
)
"""Accepted spellings: ``"1.2.3.4:5"``, ``"[::1]:5"``, ``(host, port)``, a 4-tuple from an
IPv6 socket, or ``(ipaddress object, port)``."""

_MAX_PORT: Final = 0xFFFF
_V4_MAPPED_PREFIX: Final = bytes(10) + b"\xff\xff"


class AddrParseError(DecodeError):
    """Text or a tuple that is not a valid socket address."""


def _ipv6_text(addr: ipaddress.IPv6Address) -> str:
    """Rust's ``Ipv6Addr`` display: RFC 5952, IPv4-mapped addresses in dotted form.

    Python before 3.13 prints mapped addresses in hex; Rust (and Python 3.13) use
    ``::ffff:a.b.c.d``, and this text is what users and the Rust side compare against.
    """
    packed = addr.packed
    scope = f"%{addr.scope_id}" if addr.scope_id else ""
    if packed[:12] == _V4_MAPPED_PREFIX:
        return f"::ffff:{ipaddress.IPv4Address(packed[12:])}{scope}"
    return ipaddress.IPv6Address(packed).compressed + scope


def _ip_text(ip: IpAddress) -> str:
    return str(ip) if isinstance(ip, ipaddress.IPv4Address) else _ipv6_text(ip)


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= _MAX_PORT:
        raise AddrParseError(f"invalid port {port!r}")
    return port


def _parse_ip(text: str) -> IpAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise AddrParseError(f"invalid IP address {text[:80]!r}") from None


def parse_socket_addr(value: SocketAddrLike) -> tuple[IpAddress, int]:
    """Parse any accepted socket-address spelling into ``(ip, port)``.

    Raises :class:`AddrParseError` (a :class:`~aioiroh.errors.DecodeError`).
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            host, sep, port_text = text[1:].partition("]:")
            if not sep:
                raise AddrParseError(f"invalid socket address {text[:80]!r}")
            ip = _parse_ip(host)
            if not isinstance(ip, ipaddress.IPv6Address):
                raise AddrParseError(f"bracketed address is not IPv6: {text[:80]!r}")
        else:
            host, sep, port_text = text.rpartition(":")
            if not sep or ":" in host:
                raise AddrParseError(f"invalid socket address {text[:80]!r}")
            ip = _parse_ip(host)
            if not isinstance(ip, ipaddress.IPv4Address):
                raise AddrParseError(f"unbracketed address is not IPv4: {text[:80]!r}")
        if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
            raise AddrParseError(f"invalid port in {text[:80]!r}")
        return ip, _check_port(int(port_text))
    if isinstance(value, tuple) and len(value) in (2, 4):
        host_value, port = value[0], value[1]
        if isinstance(host_value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            ip = host_value
        elif isinstance(host_value, str):
            ip = _parse_ip(host_value)
        else:
            raise AddrParseError(f"invalid host {host_value!r}")
        if len(value) == 4 and isinstance(ip, ipaddress.IPv6Address) and value[3]:
            # A socket's 4-tuple carries the scope id as an int.
            ip = ipaddress.IPv6Address(f"{ip.compressed.split('%')[0]}%{int(value[3])}")
        return ip, _check_port(port)
    raise AddrParseError(f"not a socket address: {value!r}")


def format_socket_addr(ip: IpAddress, port: int) -> str:
    """Rust's ``SocketAddr`` display: ``1.2.3.4:5`` or ``[::1]:5``."""
    if isinstance(ip, ipaddress.IPv6Address):
        return f"[{_ipv6_text(ip)}]:{port}"
    return f"{ip}:{port}"


class TransportAddr:
    """One way to reach an endpoint: a relay URL or an IP socket address.

    Build with :meth:`relay` or :meth:`ip`. ``str()`` gives Rust's display form
    (``relay:https://…/``, ``ip:1.2.3.4:5``, ``ip:[::1]:5``). Ordering follows Rust.
    """

    __slots__ = ("_ip", "_key", "_port", "_relay")

    def __init__(
        self,
        *,
        relay_url: RelayUrl | None = None,
        ip: IpAddress | None = None,
        port: int = 0,
    ) -> None:
        if (relay_url is None) == (ip is None):
            raise ValueError("a TransportAddr is either a relay URL or an IP address")
        if relay_url is not None and not isinstance(relay_url, RelayUrl):
            raise TypeError("relay_url must be a RelayUrl; use TransportAddr.relay() for text")
        if ip is not None:
            if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise TypeError("ip must be an ipaddress object; use TransportAddr.ip() for text")
            _check_port(port)
        self._relay = relay_url
        self._ip = ip
        self._port = port
        self._key: tuple[int, str] | tuple[int, int, bytes, int, str]
        if relay_url is not None:
            self._key = (0, str(relay_url))
        else:
            assert ip is not None
            scope = (ip.scope_id or "") if isinstance(ip, ipaddress.IPv6Address) else ""
            self._key = (1, ip.version, ip.packed, port, scope)

    @classmethod
    def relay(cls, url: RelayUrl | str) -> TransportAddr:
        """A relay address; ``url`` is parsed if given as text."""
        return cls(relay_url=url if isinstance(url, RelayUrl) else RelayUrl(url))

    @classmethod
    def ip(cls, addr: SocketAddrLike) -> TransportAddr:
        """An IP socket address from any :data:`SocketAddrLike` spelling."""
        ip, port = parse_socket_addr(addr)
        return cls(ip=ip, port=port)

    @classmethod
    def parse(cls, text: str) -> TransportAddr:
        """Parse the display form ``relay:<url>`` or ``ip:<addr>``."""
        kind, sep, rest = text.partition(":")
        if sep and kind == "relay":
            return cls.relay(rest)
        if sep and kind == "ip":
            return cls.ip(rest)
        raise AddrParseError(f"invalid transport address {text[:80]!r}")

    @property
    def kind(self) -> Literal["relay", "ip"]:
        """``"relay"`` or ``"ip"``."""
        return "relay" if self._relay is not None else "ip"

    @property
    def is_relay(self) -> bool:
        """True for a relay URL."""
        return self._relay is not None

    @property
    def is_ip(self) -> bool:
        """True for a direct IP address."""
        return self._ip is not None

    @property
    def relay_url(self) -> RelayUrl | None:
        """The relay URL, or None for an IP address."""
        return self._relay

    @property
    def ip_addr(self) -> IpAddress | None:
        """The IP address, or None for a relay."""
        return self._ip

    @property
    def port(self) -> int | None:
        """The UDP port, or None for a relay."""
        return self._port if self._ip is not None else None

    @property
    def socket_addr(self) -> SocketAddr | None:
        """``(host, port)`` for asyncio, or None for a relay."""
        if self._ip is None:
            return None
        return _ip_text(self._ip), self._port

    def __str__(self) -> str:
        if self._relay is not None:
            return f"relay:{self._relay}"
        assert self._ip is not None
        return f"ip:{format_socket_addr(self._ip, self._port)}"

    def __repr__(self) -> str:
        return f"TransportAddr({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportAddr) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __lt__(self, other: TransportAddr) -> bool:
        if not isinstance(other, TransportAddr):
            return NotImplemented
        # Rust order: variant first, then URL string, or (IP version, bytes, port).
        return self._key < other._key


def _to_transport(value: TransportAddr | SocketAddrLike) -> TransportAddr:
    return value if isinstance(value, TransportAddr) else TransportAddr.ip(value)


class EndpointAddr:
    """An endpoint id plus the relay URLs and IP addresses it may be reached at.

    ``EndpointAddr(id, relay_url=None, direct_addresses=())``: ``id`` is a
    :class:`~aioiroh.base.key.PublicKey` (or its text), ``relay_url`` a :class:`RelayUrl`
    or text, ``direct_addresses`` any :data:`SocketAddrLike` values. Immutable and hashable;
    ``with_*`` methods return new values.
    """

    __slots__ = ("_addrs", "_id", "_sorted")

    def __init__(
        self,
        endpoint_id: PublicKey | str,
        relay_url: RelayUrl | str | None = None,
        direct_addresses: Iterable[SocketAddrLike | TransportAddr] = (),
    ) -> None:
        if isinstance(endpoint_id, str):
            endpoint_id = PublicKey.parse(endpoint_id)
        if not isinstance(endpoint_id, PublicKey):
            raise TypeError(f"endpoint_id must be a PublicKey, not {type(endpoint_id).__name__}")
        if isinstance(direct_addresses, str):
            raise TypeError("direct_addresses must be an iterable of addresses, not one str")
        addrs = {_to_transport(a) for a in direct_addresses}
        if relay_url is not None:
            addrs.add(TransportAddr.relay(relay_url))
        self._id = endpoint_id
        self._addrs = frozenset(addrs)
        self._sorted = tuple(sorted(self._addrs))

    @classmethod
    def from_id(cls, endpoint_id: PublicKey | str) -> EndpointAddr:
        """An address with no relay and no direct addresses (needs address lookup)."""
        return cls(endpoint_id)

    @classmethod
    def from_parts(
        cls, endpoint_id: PublicKey | str, addrs: Iterable[TransportAddr]
    ) -> EndpointAddr:
        """Build from an id and any transport addresses (several relays allowed)."""
        return cls(endpoint_id, None, addrs)

    @property
    def id(self) -> PublicKey:
        """The endpoint's id (its public key)."""
        return self._id

    @property
    def addrs(self) -> tuple[TransportAddr, ...]:
        """All transport addresses, in Rust order."""
        return self._sorted

    @property
    def relay_urls(self) -> tuple[RelayUrl, ...]:
        """All relay URLs, sorted."""
        return tuple(a.relay_url for a in self._sorted if a.relay_url is not None)

    @property
    def relay_url(self) -> RelayUrl | None:
        """The first relay URL (sorted order), or None."""
        urls = self.relay_urls
        return urls[0] if urls else None

    @property
    def ip_addrs(self) -> tuple[TransportAddr, ...]:
        """The IP transport addresses, in Rust order."""
        return tuple(a for a in self._sorted if a.is_ip)

    @property
    def direct_addresses(self) -> tuple[SocketAddr, ...]:
        """The IP addresses as ``(host, port)`` tuples, in Rust order."""
        return tuple(a.socket_addr for a in self._sorted if a.socket_addr is not None)

    def with_relay_url(self, url: RelayUrl | str) -> EndpointAddr:
        """A copy with ``url`` added to the relays."""
        return EndpointAddr.from_parts(self._id, (*self._addrs, TransportAddr.relay(url)))

    def with_direct_addresses(
        self, addrs: Iterable[SocketAddrLike | TransportAddr]
    ) -> EndpointAddr:
        """A copy with ``addrs`` added to the direct addresses."""
        if isinstance(addrs, str):
            raise TypeError("addrs must be an iterable of addresses, not one str")
        extra = [_to_transport(a) for a in addrs]
        return EndpointAddr.from_parts(self._id, (*self._addrs, *extra))

    def with_addrs(self, addrs: Iterable[TransportAddr]) -> EndpointAddr:
        """A copy with the transport addresses ``addrs`` added."""
        return EndpointAddr.from_parts(self._id, (*self._addrs, *addrs))

    def is_empty(self) -> bool:
        """True if there is no relay and no direct address."""
        return not self._addrs

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EndpointAddr)
            and other._id == self._id
            and other._addrs == self._addrs
        )

    def __hash__(self) -> int:
        return hash((self._id, self._addrs))

    def __repr__(self) -> str:
        addrs = ", ".join(str(a) for a in self._sorted)
        return f"EndpointAddr(id={self._id.fmt_short()}, addrs=[{addrs}])"
