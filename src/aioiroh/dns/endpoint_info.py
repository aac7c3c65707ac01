"""What an endpoint publishes about itself, and its TXT-attribute form (wire doc §6.2).

An :class:`EndpointInfo` is an :data:`EndpointId` plus relay URLs, direct addresses and optional
user data. Address lookup services carry it as DNS TXT records named ``_iroh.<z32-id>`` whose
character strings are ``relay=<url>``, ``addr=<ip:port>`` and ``user-data=<text>``.

Pure code: no I/O. Parsing mirrors Rust iroh-dns (``attrs.rs``, ``endpoint_info.rs``): each
string is split on ``=`` and only the first two pieces count, an unknown key fails the whole
set, and values that do not parse (a bad URL or address) are skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..base.key import EndpointId
from ..base.relay_url import RelayUrl
from ..errors import DecodeError

__all__ = [
    "IROH_TXT_NAME",
    "MAX_USER_DATA_LENGTH",
    "CustomAddr",
    "EndpointInfo",
    "endpoint_id_from_txt_name",
    "normalize_relay_url",
    "txt_name",
]

IROH_TXT_NAME: Final = "_iroh"
"""First label of every iroh TXT record name."""

# A TXT character-string holds at most 255 bytes; ``user-data=`` takes 10 of them.
MAX_USER_DATA_LENGTH: Final = 245

# Attribute keys in the order Rust emits them (its enum order: Relay < Addr < UserData).
_KEY_RELAY: Final = "relay"
_KEY_ADDR: Final = "addr"
_KEY_USER_DATA: Final = "user-data"
_KNOWN_KEYS: Final = frozenset({_KEY_RELAY, _KEY_ADDR, _KEY_USER_DATA})


@dataclass(frozen=True, slots=True)
class CustomAddr:
    """A custom-transport address: a transport id and opaque bytes (``<hex id>_<hex data>``)."""

    id: int
    """Transport identifier (u64)."""
    data: bytes
    """Transport-specific address bytes."""

    def __str__(self) -> str:
        return f"{self.id:x}_{self.data.hex()}"

    @classmethod
    def parse(cls, text: str) -> CustomAddr:
        """Parse ``<hex id>_<hex data>``; raise :class:`DecodeError` if malformed."""
        id_text, sep, data_text = text.partition("_")
        if not sep or not id_text or not _is_hex(id_text) or not _is_hex(data_text, empty=True):
            raise DecodeError(f"not a custom address: {text[:80]!r}")
        value = int(id_text, 16)
        if value >= 1 << 64 or len(data_text) % 2:
            raise DecodeError(f"not a custom address: {text[:80]!r}")
        return cls(value, bytes.fromhex(data_text))


def _is_hex(text: str, *, empty: bool = False) -> bool:
    if not text:
        return empty
    return all(c in "0123456789abcdefABCDEF" for c in text)


def normalize_relay_url(text: str | RelayUrl) -> RelayUrl:
    """Parse a relay URL as Rust does (wire doc §7.3); raise :class:`DecodeError`."""
    return RelayUrl(text)


def _format_addr(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_socket_addr(text: str) -> tuple[str, int]:
    """Parse Rust ``SocketAddr`` text: ``1.2.3.4:5`` or ``[v6]:5``; raise ``ValueError``."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(text)
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv6Address(host)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(text)
        ip = ipaddress.IPv4Address(host)
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 0xFFFF:
        raise ValueError(text)
    return (str(ip), int(port_text))


def _dedup(items: Iterable[object]) -> tuple[Any, ...]:
    seen: dict[object, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """An endpoint's id and the addressing it publishes (Rust ``EndpointInfo``).

    Sequences keep their order (it encodes priority) and drop duplicates.
    """

    endpoint_id: EndpointId
    """Whose information this is."""
    relay_urls: tuple[RelayUrl, ...] = ()
    """Home relay URLs (``str`` values are parsed on construction)."""
    direct_addresses: tuple[tuple[str, int], ...] = ()
    """Direct UDP addresses as ``(ip, port)``."""
    user_data: str | None = None
    """Application data, at most :data:`MAX_USER_DATA_LENGTH` UTF-8 bytes."""
    custom_addrs: tuple[CustomAddr, ...] = field(default=())
    """Custom-transport addresses (rare; not used by aioiroh itself)."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "relay_urls", _dedup(normalize_relay_url(u) for u in self.relay_urls)
        )
        object.__setattr__(
            self, "direct_addresses", _dedup((str(h), int(p)) for h, p in self.direct_addresses)
        )
        object.__setattr__(self, "custom_addrs", _dedup(self.custom_addrs))
        if self.user_data is not None and len(self.user_data.encode()) > MAX_USER_DATA_LENGTH:
            raise ValueError(f"user data longer than {MAX_USER_DATA_LENGTH} bytes")

    def has_addrs(self) -> bool:
        """True if there is any relay, direct or custom address."""
        return bool(self.relay_urls or self.direct_addresses or self.custom_addrs)

    def filtered(self, *, relay: bool = True, direct: bool = True) -> EndpointInfo:
        """A copy keeping only relay URLs and/or direct (and custom) addresses."""
        return EndpointInfo(
            self.endpoint_id,
            self.relay_urls if relay else (),
            self.direct_addresses if direct else (),
            self.user_data,
            self.custom_addrs if direct else (),
        )

    def merged(self, other: EndpointInfo) -> EndpointInfo:
        """Union of the addresses of two infos about the same endpoint (ours first)."""
        return EndpointInfo(
            self.endpoint_id,
            self.relay_urls + other.relay_urls,
            self.direct_addresses + other.direct_addresses,
            self.user_data if self.user_data is not None else other.user_data,
            self.custom_addrs + other.custom_addrs,
        )

    # -- TXT attributes ---------------------------------------------------------------------

    def to_txt_strings(self) -> list[str]:
        """The ``key=value`` strings, one per TXT record, in Rust's order."""
        out = [f"{_KEY_RELAY}={url}" for url in self.relay_urls]
        out += [f"{_KEY_ADDR}={_format_addr(a)}" for a in self.direct_addresses]
        out += [f"{_KEY_ADDR}={c}" for c in self.custom_addrs]
        if self.user_data is not None:
            out.append(f"{_KEY_USER_DATA}={self.user_data}")
        return out

    @classmethod
    def from_txt_strings(cls, endpoint_id: EndpointId, strings: Iterable[str]) -> EndpointInfo:
        """Parse ``key=value`` strings; raise :class:`DecodeError` on a malformed string or an
        unknown key (as Rust does). Unparseable values are skipped."""
        attrs: dict[str, list[str]] = {k: [] for k in _KNOWN_KEYS}
        for s in strings:
            parts = s.split("=")
            if len(parts) < 2:
                raise DecodeError(f"expected key=value, got {s[:80]!r}")
            key, value = parts[0], parts[1]  # Rust ignores anything after a second '='
            if key not in _KNOWN_KEYS:
                raise DecodeError(f"unknown iroh TXT attribute {key[:40]!r}")
            attrs[key].append(value)
        relays = []
        for value in attrs[_KEY_RELAY]:
            try:
                relays.append(normalize_relay_url(value))
            except DecodeError:
                continue
        direct: list[tuple[str, int]] = []
        custom: list[CustomAddr] = []
        for value in attrs[_KEY_ADDR]:
            try:
                direct.append(_parse_socket_addr(value))
            except ValueError:
                try:
                    custom.append(CustomAddr.parse(value))
                except DecodeError:
                    continue
        user_data = None
        if attrs[_KEY_USER_DATA]:
            first = attrs[_KEY_USER_DATA][0]
            if len(first.encode()) <= MAX_USER_DATA_LENGTH:
                user_data = first
        return cls(endpoint_id, tuple(relays), tuple(direct), user_data, tuple(custom))

    @classmethod
    def from_txt_lookup(cls, name: str, strings: Iterable[str]) -> EndpointInfo:
        """Parse the TXT answer for ``name`` (``_iroh.<z32>.<origin>``)."""
        return cls.from_txt_strings(endpoint_id_from_txt_name(name), strings)

    def __repr__(self) -> str:
        return (
            f"EndpointInfo({self.endpoint_id.fmt_short()}, "
            f"relay_urls={[str(u) for u in self.relay_urls]}, "
            f"direct_addresses={list(self.direct_addresses)}, user_data={self.user_data!r})"
        )


def txt_name(endpoint_id: EndpointId, origin: str = "") -> str:
    """``_iroh.<z32>.<origin>`` (absolute, with a trailing dot)."""
    origin = origin.strip(".")
    base = f"{IROH_TXT_NAME}.{endpoint_id.to_z32()}"
    return f"{base}.{origin}." if origin else f"{base}."


def endpoint_id_from_txt_name(name: str) -> EndpointId:
    """The id in the second label of ``_iroh.<z32>...``; raise :class:`DecodeError`."""
    labels: Sequence[str] = name.split(".")
    if len(labels) < 2:
        raise DecodeError(f"expected at least 2 labels in {name[:120]!r}")
    if labels[0] != IROH_TXT_NAME:
        raise DecodeError(f"not an iroh record name: {name[:120]!r}")
    return EndpointId.from_z32(labels[1])
