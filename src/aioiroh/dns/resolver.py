"""Async TXT lookups over UDP, TCP or DNS-over-HTTPS against chosen nameservers (§6.4).

A thin driver around dnspython messages: UDP first, retried over TCP when the answer is
truncated; or DoH (RFC 8484, POST ``application/dns-message``) when a URL is given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final, Literal

import aiohttp
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from ..base.key import EndpointId
from ..errors import DecodeError, IrohError
from .endpoint_info import EndpointInfo, txt_name

__all__ = ["DEFAULT_DNS_TIMEOUT", "DnsLookupError", "DnsResolver"]

log = logging.getLogger(__name__)

DEFAULT_DNS_TIMEOUT: Final = 3.0
"""Per-query timeout, seconds (iroh uses a few seconds per attempt)."""
# Largest DoH response body we read; a DNS message cannot exceed 65535 bytes.
MAX_DOH_RESPONSE: Final = 65535

Transport = Literal["udp", "tcp"]


class DnsLookupError(IrohError):
    """A DNS lookup failed: timeout, network error, an error rcode (``rcode`` set), or the
    name has no records (``not_found``: an authoritative answer, not worth retrying)."""

    def __init__(self, message: str, *, rcode: int | None = None, not_found: bool = False) -> None:
        super().__init__(message)
        self.rcode = rcode
        self.not_found = not_found


def _txt_values(response: dns.message.Message, qname: dns.name.Name) -> list[str]:
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return []
    if rcode != dns.rcode.NOERROR:
        raise DnsLookupError(f"DNS error {dns.rcode.to_text(rcode)} for {qname}", rcode=rcode)
    out: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype != dns.rdatatype.TXT or rrset.name != qname:
            continue
        for rdata in rrset:
            # Like hickory's Display: character strings concatenated without separator.
            out.append(b"".join(rdata.strings).decode("utf-8", "replace"))
    return out


class DnsResolver:
    """TXT lookups against explicit nameservers ``(ip, port)`` or a DoH URL.

    ``transport`` picks UDP (with TCP fallback on truncation) or TCP only. When ``doh_url``
    is set, queries go there instead. Without either, the system's ``/etc/resolv.conf``
    nameservers on port 53 are used.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        *,
        doh_url: str | None = None,
        transport: Transport = "udp",
        timeout: float = DEFAULT_DNS_TIMEOUT,
    ) -> None:
        self._nameservers = list(nameservers) if nameservers else []
        self._doh_url = doh_url
        self._transport: Transport = transport
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        if not self._nameservers and doh_url is None:
            import dns.resolver

            conf = dns.resolver.Resolver(configure=True)
            self._nameservers = [(str(ns), 53) for ns in conf.nameservers]

    @classmethod
    def with_nameserver(cls, host: str, port: int = 53, **kwargs: object) -> DnsResolver:
        """A resolver asking only ``host:port``."""
        return cls([(host, port)], **kwargs)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        """Close the DoH HTTP session, if any."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> DnsResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def query(self, request: dns.message.Message) -> dns.message.Message:
        """Send one query and return the response; try each nameserver in turn."""
        if self._doh_url is not None:
            return await self._query_doh(request)
        last: Exception | None = None
        for host, port in self._nameservers:
            try:
                if self._transport == "tcp":
                    return await dns.asyncquery.tcp(request, host, port=port, timeout=self._timeout)
                response = await dns.asyncquery.udp(
                    request, host, port=port, timeout=self._timeout, ignore_unexpected=True
                )
                if response.flags & dns.flags.TC:
                    response = await dns.asyncquery.tcp(
                        request, host, port=port, timeout=self._timeout
                    )
                return response
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                log.debug("DNS query to %s:%d failed: %r", host, port, exc)
                last = exc
        raise DnsLookupError(f"no nameserver answered: {last!r}")

    async def _query_doh(self, request: dns.message.Message) -> dns.message.Message:
        assert self._doh_url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        headers = {"content-type": "application/dns-message", "accept": "application/dns-message"}
        try:
            async with self._session.post(
                self._doh_url, data=request.to_wire(), headers=headers
            ) as resp:
                if resp.status != 200:
                    raise DnsLookupError(f"DoH server returned HTTP {resp.status}")
                body = await resp.content.read(MAX_DOH_RESPONSE + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DnsLookupError(f"DoH request failed: {exc!r}") from None
        if len(body) > MAX_DOH_RESPONSE:
            raise DnsLookupError("DoH response too large")
        try:
            return dns.message.from_wire(body)
        except (dns.exception.DNSException, ValueError) as exc:
            raise DecodeError(f"malformed DoH response: {exc}") from None

    async def lookup_txt(self, name: str) -> list[str]:
        """TXT values at ``name`` (empty on NXDOMAIN); raise :class:`DnsLookupError`."""
        qname = dns.name.from_text(name)
        request = dns.message.make_query(qname, dns.rdatatype.TXT)
        response = await self.query(request)
        return _txt_values(response, qname)

    async def lookup_endpoint(self, endpoint_id: EndpointId, origin: str) -> EndpointInfo:
        """Resolve ``_iroh.<z32>.<origin>``; raise :class:`DnsLookupError` if absent."""
        name = txt_name(endpoint_id, origin)
        values = await self.lookup_txt(name)
        if not values:
            raise DnsLookupError(f"no iroh TXT records at {name}", not_found=True)
        return EndpointInfo.from_txt_lookup(name, values)
