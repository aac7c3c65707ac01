"""Port mapping on the home router: PCP (RFC 6887), NAT-PMP (RFC 6886) and UPnP IGD.

Like Rust iroh's ``portmapper``: the endpoint asks its default gateway to forward a public
UDP port to its socket and publishes the mapped address as a direct candidate, which makes
even a symmetric NAT reachable. The codecs (:mod:`.pcp`, :mod:`.nat_pmp`, :mod:`.upnp`) are
sans-I/O; :class:`PortMapper` is the asyncio service.
"""

from __future__ import annotations

from .errors import PortMapDecodeError, PortMapError, PortMapRefused
from .metrics import PortmapMetrics
from .service import Gateway, GatewayDiscovery, PortMapper, PortMapping, default_gateway

__all__ = [
    "Gateway",
    "GatewayDiscovery",
    "PortMapDecodeError",
    "PortMapError",
    "PortMapRefused",
    "PortMapper",
    "PortMapping",
    "PortmapMetrics",
    "default_gateway",
]
