"""pkarr signed packets, byte-compatible with Rust iroh-dns (wire doc §6.1).

Layout: ``public_key (32) ‖ signature (64) ‖ timestamp (u64 BE, µs since epoch) ‖ DNS packet``.
The Ed25519 signature covers the BEP-44 string ``3:seqi<ts>e1:v<len>:<dns>``. The DNS packet is a
response (id 0, QR set) with answers only; names are relative to the signer's z-base-32 key,
which acts as the zone apex (``_iroh.<z32>.`` on the wire).

Pure code: the caller passes the timestamp in (see :class:`TimestampClock`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from ..base.key import EndpointId, PublicKey, SecretKey, Signature
from ..errors import DecodeError, KeyParseError
from .endpoint_info import IROH_TXT_NAME, EndpointInfo

__all__ = [
    "DEFAULT_PKARR_TTL",
    "HEADER_SIZE",
    "MAX_DNS_PACKET_SIZE",
    "MAX_SIGNED_PACKET_SIZE",
    "SignedPacket",
    "TimestampClock",
    "signable",
]

MAX_DNS_PACKET_SIZE: Final = 1000
"""Largest DNS payload a pkarr relay accepts (BEP-44 ``v`` limit)."""
HEADER_SIZE: Final = 104
"""Key, signature and timestamp."""
MAX_SIGNED_PACKET_SIZE: Final = HEADER_SIZE + MAX_DNS_PACKET_SIZE
DEFAULT_PKARR_TTL: Final = 30
"""TTL iroh puts on its TXT records, in seconds."""
_MAX_U64: Final = (1 << 64) - 1


def signable(timestamp: int, dns_packet: bytes) -> bytes:
    """The BEP-44 byte string that the signature covers."""
    return b"3:seqi%de1:v%d:" % (timestamp, len(dns_packet)) + dns_packet


class TimestampClock:
    """Strictly increasing microsecond timestamps (never repeats, never goes back).

    Relays and the DHT reject a packet that is not newer than the stored one, so two publishes
    in the same microsecond, or after the wall clock stepped back, must still increase.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def next(self, now_micros: int) -> int:
        """A timestamp ≥ ``now_micros`` and > every earlier result."""
        self._last = max(int(now_micros), self._last + 1)
        return self._last


def _parse_dns(data: bytes) -> dns.message.Message:
    try:
        return dns.message.from_wire(data, ignore_trailing=False)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as exc:
        raise DecodeError(f"invalid DNS packet in signed packet: {exc}") from None


class SignedPacket:
    """A verified (or explicitly unchecked) pkarr signed packet; immutable bytes."""

    __slots__ = ("_bytes", "_message")

    MAX_BYTES: Final = MAX_SIGNED_PACKET_SIZE

    def __init__(self, data: bytes, *, _message: dns.message.Message | None = None) -> None:
        # Use from_bytes / sign: this constructor trusts its input.
        self._bytes = bytes(data)
        self._message = _message

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def sign(cls, secret_key: SecretKey, dns_packet: bytes, timestamp: int) -> SignedPacket:
        """Sign an encoded DNS packet at ``timestamp`` (µs); raise ``ValueError`` if too big."""
        if len(dns_packet) > MAX_DNS_PACKET_SIZE:
            raise ValueError(f"DNS packet too large: {len(dns_packet)} > {MAX_DNS_PACKET_SIZE}")
        if not 0 <= timestamp <= _MAX_U64:
            raise ValueError("timestamp out of u64 range")
        sig = secret_key.sign(signable(timestamp, dns_packet))
        sig_bytes = sig.to_bytes() if isinstance(sig, Signature) else bytes(sig)
        return cls(
            secret_key.public().to_bytes() + sig_bytes + timestamp.to_bytes(8, "big") + dns_packet
        )

    @classmethod
    def from_txt_strings(
        cls,
        secret_key: SecretKey,
        name: str,
        values: Iterable[str],
        *,
        timestamp: int,
        ttl: int = DEFAULT_PKARR_TTL,
    ) -> SignedPacket:
        """One TXT record per value, all under ``name`` relative to the signer's zone."""
        zone = secret_key.public().to_z32()
        owner = dns.name.from_text(_normalize_name(zone, name), origin=dns.name.root)
        msg = dns.message.Message(id=0)
        msg.flags = dns.flags.QR
        for value in values:
            raw = value.encode()
            if len(raw) > 255:
                raise ValueError(f"TXT string longer than 255 bytes: {value[:40]!r}…")
            # One RRset per record: dnspython shuffles the records inside an RRset when
            # rendering, and Rust keeps them in insertion order.
            rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.TXT)
            rrset.add(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [raw]), ttl)
            msg.answer.append(rrset)
        return cls.sign(secret_key, msg.to_wire(), timestamp)

    @classmethod
    def from_endpoint_info(
        cls,
        info: EndpointInfo,
        secret_key: SecretKey,
        *,
        timestamp: int,
        ttl: int = DEFAULT_PKARR_TTL,
    ) -> SignedPacket:
        """The packet iroh publishes: ``_iroh`` TXT records for ``info``."""
        if secret_key.public() != info.endpoint_id:
            raise ValueError("secret key does not belong to info.endpoint_id")
        return cls.from_txt_strings(
            secret_key, IROH_TXT_NAME, info.to_txt_strings(), timestamp=timestamp, ttl=ttl
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedPacket:
        """Parse and verify the full form; raise :class:`DecodeError` or :class:`SignatureError`."""
        packet, message = cls._check_shape(data)
        key = packet.public_key
        key.verify(signable(packet.timestamp, packet.dns_packet), packet.signature)
        packet._message = message
        return packet

    @classmethod
    def from_bytes_unchecked(cls, data: bytes) -> SignedPacket:
        """Parse without checking the signature (for trusted storage)."""
        packet, message = cls._check_shape(data)
        packet._message = message
        return packet

    @classmethod
    def _check_shape(cls, data: bytes) -> tuple[SignedPacket, dns.message.Message]:
        data = bytes(data)
        if len(data) < HEADER_SIZE:
            raise DecodeError(f"signed packet too short: {len(data)} bytes")
        if len(data) > MAX_SIGNED_PACKET_SIZE:
            raise DecodeError(f"signed packet too large: {len(data)} bytes")
        try:
            PublicKey.from_bytes(data[:32])
        except KeyParseError as exc:
            raise DecodeError(f"invalid public key in signed packet: {exc}") from None
        return cls(data), _parse_dns(data[HEADER_SIZE:])

    @classmethod
    def from_relay_body(cls, public_key: PublicKey, body: bytes) -> SignedPacket:
        """Verify a pkarr relay HTTP body (everything after the key) for ``public_key``."""
        return cls.from_bytes(public_key.to_bytes() + bytes(body))

    # -- accessors --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The full wire form (key ‖ sig ‖ ts ‖ dns)."""
        return self._bytes

    def to_relay_body(self) -> bytes:
        """The pkarr relay HTTP body: the wire form without the leading key."""
        return self._bytes[32:]

    @property
    def public_key(self) -> EndpointId:
        """The signer, i.e. the endpoint the packet describes."""
        return PublicKey.from_bytes(self._bytes[:32])

    @property
    def signature(self) -> bytes:
        """The 64-byte Ed25519 signature."""
        return self._bytes[32:96]

    @property
    def timestamp(self) -> int:
        """Microseconds since the Unix epoch."""
        return int.from_bytes(self._bytes[96:104], "big")

    @property
    def dns_packet(self) -> bytes:
        """The encoded DNS packet."""
        return self._bytes[HEADER_SIZE:]

    def message(self) -> dns.message.Message:
        """The DNS packet, parsed with dnspython."""
        if self._message is None:
            self._message = _parse_dns(self.dns_packet)
        return self._message

    def more_recent_than(self, other: SignedPacket) -> bool:
        """Newer timestamp wins; on a tie the larger DNS packet bytes win (as Rust)."""
        if self.timestamp == other.timestamp:
            return self.dns_packet > other.dns_packet
        return self.timestamp > other.timestamp

    def txt_records(self, name: str = IROH_TXT_NAME) -> list[str]:
        """TXT values under ``name`` (relative to the signer's zone), strings concatenated."""
        zone = dns.name.from_text(self.public_key.to_z32(), origin=dns.name.root)
        wanted = dns.name.from_text(_normalize_name(zone.labels[0].decode(), name))
        out: list[str] = []
        for rrset in self.message().answer:
            if rrset.rdtype != dns.rdatatype.TXT or rrset.name != wanted:
                continue
            for rdata in rrset:
                out.append(b"".join(rdata.strings).decode("utf-8", "replace"))
        return out

    def all_txt_records(self) -> list[tuple[str, str]]:
        """``(name relative to the zone, value)`` for every TXT record."""
        zone = dns.name.from_text(self.public_key.to_z32(), origin=dns.name.root)
        out: list[tuple[str, str]] = []
        for rrset in self.message().answer:
            if rrset.rdtype != dns.rdatatype.TXT:
                continue
            rel = rrset.name.relativize(zone).to_text() if rrset.name.is_subdomain(zone) else ""
            for rdata in rrset:
                out.append((rel, b"".join(rdata.strings).decode("utf-8", "replace")))
        return out

    def endpoint_info(self) -> EndpointInfo:
        """Decode the ``_iroh`` TXT records; raise :class:`DecodeError` if malformed."""
        return EndpointInfo.from_txt_strings(self.public_key, self.txt_records(IROH_TXT_NAME))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignedPacket) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"SignedPacket({self.public_key.fmt_short()}, ts={self.timestamp})"


def _normalize_name(zone: str, name: str) -> str:
    """Make ``name`` absolute under the z32 ``zone``: ``@`` or empty means the apex."""
    name = name.rstrip(".")
    labels = name.split(".")
    if labels[-1] == zone:
        return name + "."
    if labels[-1] in ("@", ""):
        return zone + "."
    return f"{name}.{zone}."
