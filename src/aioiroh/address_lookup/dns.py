"""``DnsAddressLookup``: resolve ``_iroh.<z32>.<origin>`` TXT records (resolve only, §6.4)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Final

from ..base.key import EndpointId
from ..dns.endpoint_info import EndpointInfo
from ..dns.resolver import DnsLookupError, DnsResolver
from ..errors import DecodeError
from .base import AddressLookupError, AddressLookupItem

__all__ = ["STAGGER_DELAYS", "DnsAddressLookup"]

STAGGER_DELAYS: Final = (0.2, 0.3, 0.6, 1.0, 2.0, 3.0)
"""Extra attempts start this long after the first (iroh ``address_lookup/dns.rs``), racing it."""
PROVENANCE: Final = "dns"


class DnsAddressLookup:
    """Looks endpoints up in DNS under ``origin`` (e.g. ``dns.iroh.link.``).

    ``nameserver`` is ``(ip, port)``; without it (and without ``resolver``) the system
    nameservers are used.
    """

    def __init__(
        self,
        origin: str,
        nameserver: tuple[str, int] | None = None,
        *,
        resolver: DnsResolver | None = None,
        stagger: Sequence[float] = STAGGER_DELAYS,
    ) -> None:
        self.origin = origin if origin.endswith(".") else origin + "."
        self._owns_resolver = resolver is None
        self._resolver = resolver or DnsResolver([nameserver] if nameserver else None)
        self._stagger = tuple(stagger)

    def publish(self, info: EndpointInfo) -> None:
        """DNS lookup does not publish (publish through pkarr instead)."""

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        """One item from DNS, or :class:`AddressLookupError`."""
        return self._resolve(endpoint_id)

    async def lookup(self, endpoint_id: EndpointId) -> EndpointInfo:
        """Staggered lookups: the first answer wins; raise :class:`AddressLookupError`."""
        errors: list[Exception] = []

        async def attempt(delay: float) -> EndpointInfo:
            await asyncio.sleep(delay)
            return await self._resolver.lookup_endpoint(endpoint_id, self.origin)

        tasks = [
            asyncio.get_running_loop().create_task(attempt(d), name="dns-lookup")
            for d in (0.0, *self._stagger)
        ]
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    return await next_done
                except (DnsLookupError, DecodeError) as exc:
                    errors.append(exc)
                    # NXDOMAIN / no records is an answer, not a transient failure.
                    if isinstance(exc, DecodeError) or exc.not_found:
                        break
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
        raise AddressLookupError(f"DNS lookup of {endpoint_id.fmt_short()} failed: {errors[0]}")

    async def _resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem]:
        info = await self.lookup(endpoint_id)
        yield AddressLookupItem(info, PROVENANCE, None)

    async def aclose(self) -> None:
        """Close the resolver if we created it."""
        if self._owns_resolver:
            await self._resolver.aclose()

    def __repr__(self) -> str:
        return f"DnsAddressLookup({self.origin!r})"
