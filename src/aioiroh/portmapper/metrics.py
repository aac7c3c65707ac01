"""Port mapper counters (the Rust ``portmapper`` crate's metrics, plus hostile-input ones)."""

from __future__ import annotations

from .._metrics import MetricsGroup

__all__ = ["PortmapMetrics"]


class PortmapMetrics(MetricsGroup):
    PREFIX = "portmap_"
    COUNTERS = {
        "probes_started": "probe rounds started",
        "pcp_probes": "PCP ANNOUNCE probes sent",
        "nat_pmp_probes": "NAT-PMP external address probes sent",
        "upnp_probes": "UPnP SSDP searches sent",
        "pcp_available": "probes a PCP server answered",
        "nat_pmp_available": "probes a NAT-PMP server answered",
        "upnp_available": "probes a UPnP IGD answered",
        "mapping_attempts": "mapping requests (new or renewal)",
        "mapping_failures": "mapping requests that failed",
        "renewals": "mappings renewed before expiry",
        "releases": "mappings released",
        "bad_responses": "gateway answers rejected as malformed, unsafe or not ours",
        "gateway_restarts": "gateway epoch resets seen (it lost its mappings)",
        "external_address_updates": "changes of the mapped external address",
    }
    GAUGES = {"mapped": "1 while a port mapping is held"}

    # Declared for type checkers; MetricsGroup sets each to 0.
    probes_started: int
    pcp_probes: int
    nat_pmp_probes: int
    upnp_probes: int
    pcp_available: int
    nat_pmp_available: int
    upnp_available: int
    mapping_attempts: int
    mapping_failures: int
    renewals: int
    releases: int
    bad_responses: int
    gateway_restarts: int
    external_address_updates: int
    mapped: int
