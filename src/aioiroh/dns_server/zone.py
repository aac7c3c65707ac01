"""DNS answers from stored pkarr packets: ``<name>.<z32>.<origin>`` → records at ``<name>``.

Pure code in two steps, so the driver can fetch the packet asynchronously in between:
:meth:`Zone.decode` turns query bytes into a :class:`ZoneQuery` (with the key to look up, or
an immediate reply), and :meth:`Zone.answer` builds the reply from the packet found.

Rules: names outside every origin get REFUSED; at an origin apex we answer SOA; an unknown key,
or a name the packet does not hold, gets NXDOMAIN; a malformed query gets FORMERR (or is
dropped if even the header is unreadable); non-QUERY opcodes get NOTIMP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ..base.key import PublicKey
from ..dns.pkarr import SignedPacket
from ..errors import KeyParseError

__all__ = ["MAX_UDP_PAYLOAD", "Zone", "ZoneQuery"]

# Without EDNS a UDP answer must fit 512 bytes (RFC 1035 §4.2.1).
CLASSIC_UDP_PAYLOAD: Final = 512
# What we advertise and honour with EDNS: the DNS-flag-day size that avoids fragmentation.
MAX_UDP_PAYLOAD: Final = 1232
_HEADER_LEN: Final = 12


@dataclass(slots=True, kw_only=True)
class ZoneQuery:
    """A decoded query: either ``reply`` is ready, or ``key`` must be looked up."""

    request: dns.message.Message | None
    """The parsed query (``None`` if unparseable)."""
    reply: bytes | None = None
    """A ready answer (errors, apex); ``None`` with ``key`` None means drop."""
    key: PublicKey | None = None
    """The endpoint whose packet answers this query."""
    subname: dns.name.Name | None = None
    """Owner name inside the key's zone (absolute under ``<z32>.``)."""
    rcode_hint: dns.rcode.Rcode = dns.rcode.NOERROR
    """Rcode of ``reply`` (for metrics)."""


class Zone:
    """Answers queries for the configured origins (absolute names, e.g. ``dns.iroh.link.``)."""

    def __init__(self, origins: Sequence[str], *, soa: str, soa_ttl: int) -> None:
        names = [dns.name.from_text(o) for o in origins]
        # Longest first, so ``a.b.`` is preferred to the root when both are configured.
        self._origins = sorted(names, key=lambda n: len(n.labels), reverse=True)
        self._soa = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SOA, soa)
        self._soa_ttl = soa_ttl

    def decode(self, wire: bytes, *, udp: bool) -> ZoneQuery:
        """Parse query bytes; see the module docstring for the rules."""
        try:
            request = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
            return ZoneQuery(request=None, reply=_formerr(wire), rcode_hint=dns.rcode.FORMERR)
        if request.flags & dns.flags.QR:
            return ZoneQuery(request=request)  # a response sent to us: drop it
        if request.opcode() != dns.opcode.QUERY:
            return self._error(request, dns.rcode.NOTIMP, udp)
        if len(request.question) != 1:
            return self._error(request, dns.rcode.FORMERR, udp)
        if request.question[0].rdtype == dns.rdatatype.ANY:
            # ANY is the classic amplification query; nothing legitimate needs it here.
            return self._error(request, dns.rcode.REFUSED, udp)
        qname = request.question[0].name
        origin = next((o for o in self._origins if qname.is_subdomain(o)), None)
        if origin is None:
            return self._error(request, dns.rcode.REFUSED, udp)
        relative = qname.relativize(origin)
        if relative == dns.name.empty:
            return self._apex(request, origin, udp)
        labels = relative.labels
        try:
            key = PublicKey.from_z32(labels[-1].decode("ascii").lower())
        except (KeyParseError, UnicodeError):
            return self._error(request, dns.rcode.NXDOMAIN, udp, origin)
        zone = dns.name.Name([labels[-1].lower(), b""])
        subname = dns.name.Name(labels[:-1]).derelativize(zone)
        return ZoneQuery(request=request, key=key, subname=subname)

    def answer(self, query: ZoneQuery, packet: SignedPacket | None, *, udp: bool) -> bytes:
        """The reply for a query that needed a lookup of ``query.key``."""
        request = query.request
        assert request is not None and query.subname is not None
        question = request.question[0]
        response = dns.message.make_response(request)
        response.flags |= dns.flags.AA
        if packet is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            query.rcode_hint = dns.rcode.NXDOMAIN
            return _render(response, udp)
        try:
            stored = packet.message().answer
        except ValueError:
            stored = []
        name_exists = False
        for rrset in stored:
            if rrset.name != query.subname:
                continue
            name_exists = True
            if question.rdtype not in (rrset.rdtype, dns.rdatatype.ANY):
                continue
            if rrset.rdclass != dns.rdataclass.IN:
                continue
            out = response.find_rrset(
                response.answer, question.name, rrset.rdclass, rrset.rdtype, create=True
            )
            out.update(rrset)
            out.update_ttl(rrset.ttl)
        if not name_exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
            query.rcode_hint = dns.rcode.NXDOMAIN
        return _render(response, udp, preserve_order=True)

    def _apex(self, request: dns.message.Message, origin: dns.name.Name, udp: bool) -> ZoneQuery:
        response = dns.message.make_response(request)
        response.flags |= dns.flags.AA
        rrset = dns.rrset.RRset(origin, dns.rdataclass.IN, dns.rdatatype.SOA)
        rrset.add(self._soa, self._soa_ttl)
        qtype = request.question[0].rdtype
        if qtype in (dns.rdatatype.SOA, dns.rdatatype.ANY):
            response.answer.append(rrset)
        else:
            response.authority.append(rrset)
        return ZoneQuery(request=request, reply=_render(response, udp))

    def _error(
        self,
        request: dns.message.Message,
        rcode: dns.rcode.Rcode,
        udp: bool,
        origin: dns.name.Name | None = None,
    ) -> ZoneQuery:
        response = dns.message.make_response(request)
        response.set_rcode(rcode)
        if origin is not None:
            response.flags |= dns.flags.AA
        return ZoneQuery(request=request, reply=_render(response, udp), rcode_hint=rcode)


def _formerr(wire: bytes) -> bytes | None:
    """A bare FORMERR header echoing the id, or ``None`` if there is no header to echo."""
    if len(wire) < _HEADER_LEN or wire[2] & 0x80:
        return None
    flags = 0x8000 | (wire[2] & 0x78) << 8 | dns.rcode.FORMERR  # QR, same opcode
    return wire[:2] + flags.to_bytes(2, "big") + bytes(8)


def _render(response: dns.message.Message, udp: bool, *, preserve_order: bool = False) -> bytes:
    limit = 65535
    if udp:
        request_payload = response.request_payload if response.edns >= 0 else 0
        limit = (
            min(max(request_payload, CLASSIC_UDP_PAYLOAD), MAX_UDP_PAYLOAD)
            if request_payload
            else CLASSIC_UDP_PAYLOAD
        )
    if response.edns >= 0:
        response.use_edns(0, payload=MAX_UDP_PAYLOAD)
    try:
        return response.to_wire(max_size=limit, want_shuffle=not preserve_order)
    except dns.exception.TooBig:
        # Answer does not fit: send the header with TC so the client retries over TCP.
        response.answer.clear()
        response.authority.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)
