"""The pluggable address-lookup interface (Rust ``iroh::address_lookup::AddressLookup``).

An address lookup service may *publish* our own :class:`EndpointInfo` (fire and forget) and
*resolve* another endpoint's id to a stream of :class:`AddressLookupItem`. Resolve streams are
async generators: consume them inside ``contextlib.aclosing(...)`` (or exhaust them) so their
background work is stopped promptly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..base.key import EndpointId
from ..dns.endpoint_info import EndpointInfo
from ..errors import IrohError

__all__ = ["AddressLookup", "AddressLookupError", "AddressLookupItem"]


class AddressLookupError(IrohError):
    """A lookup service could not resolve an endpoint (not found, unreachable, bad data)."""


@dataclass(frozen=True, slots=True)
class AddressLookupItem:
    """One result of a resolve: what was found, by whom, and how fresh it is."""

    endpoint_info: EndpointInfo
    """The addressing information found."""
    provenance: str
    """Which kind of service found it (``"pkarr"``, ``"dns"``, ``"memory"``, ``"mdns"``)."""
    last_updated: int | None = None
    """When the information was published, µs since the Unix epoch, if known."""

    @property
    def endpoint_id(self) -> EndpointId:
        """The endpoint this item is about."""
        return self.endpoint_info.endpoint_id


@runtime_checkable
class AddressLookup(Protocol):
    """What every address lookup service provides (both methods may be no-ops)."""

    def publish(self, info: EndpointInfo) -> None:
        """Announce our own addressing; returns at once, work happens in the background."""

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        """Stream what this service knows about ``endpoint_id``; ``None`` if it cannot
        resolve at all. The stream raises :class:`AddressLookupError` on failure."""

    async def aclose(self) -> None:
        """Stop background work and release resources."""
