"""User-facing defaults: ports and n0's public infrastructure, as data only (wire doc §5.8, §8).

Nothing here contacts the network. The n0 hostnames are what Rust iroh uses for
``RelayMode::Default`` / ``RelayMode::Staging`` and for its pkarr and DNS address lookup;
tests must never use them (they point at the internet).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_HTTPS_PORT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_RELAY_QUIC_PORT",
    "ENV_FORCE_STAGING_RELAYS",
    "N0_DNS_ENDPOINT_ORIGIN_PROD",
    "N0_DNS_ENDPOINT_ORIGIN_STAGING",
    "N0_DNS_PKARR_RELAY_PROD",
    "N0_DNS_PKARR_RELAY_STAGING",
    "PROD_RELAY_HOSTNAMES",
    "PROD_RELAY_URLS",
    "STAGING_RELAY_HOSTNAMES",
    "STAGING_RELAY_URLS",
]

# Relay server ports (iroh-relay defaults.rs).
DEFAULT_HTTP_PORT: Final = 80
DEFAULT_HTTPS_PORT: Final = 443
DEFAULT_METRICS_PORT: Final = 9090
# UDP port of a relay's QUIC address discovery (QAD) service.
DEFAULT_RELAY_QUIC_PORT: Final = 7842

# n0 production relays. The trailing dot makes the names fully qualified, so local DNS
# search domains never apply; it is part of the URL's identity (wire doc §7.3).
PROD_NA_EAST_RELAY_HOSTNAME: Final = "use1-1.relay.n0.iroh.link."
PROD_NA_WEST_RELAY_HOSTNAME: Final = "usw1-1.relay.n0.iroh.link."
PROD_EU_RELAY_HOSTNAME: Final = "euc1-1.relay.n0.iroh.link."
PROD_AP_RELAY_HOSTNAME: Final = "aps1-1.relay.n0.iroh.link."
PROD_RELAY_HOSTNAMES: Final = (
    PROD_NA_EAST_RELAY_HOSTNAME,
    PROD_NA_WEST_RELAY_HOSTNAME,
    PROD_EU_RELAY_HOSTNAME,
    PROD_AP_RELAY_HOSTNAME,
)
PROD_RELAY_URLS: Final = tuple(f"https://{host}/" for host in PROD_RELAY_HOSTNAMES)

# n0 staging relays.
STAGING_NA_EAST_RELAY_HOSTNAME: Final = "use1-1.staging-relay.n0.iroh.link."
STAGING_EU_RELAY_HOSTNAME: Final = "euc1-1.staging-relay.n0.iroh.link."
STAGING_RELAY_HOSTNAMES: Final = (STAGING_NA_EAST_RELAY_HOSTNAME, STAGING_EU_RELAY_HOSTNAME)
STAGING_RELAY_URLS: Final = tuple(f"https://{host}/" for host in STAGING_RELAY_HOSTNAMES)

# Address lookup: pkarr relay (HTTP PUT/GET of signed packets) and DNS origin.
N0_DNS_PKARR_RELAY_PROD: Final = "https://dns.iroh.link/pkarr"
N0_DNS_PKARR_RELAY_STAGING: Final = "https://staging-dns.iroh.link/pkarr"
N0_DNS_ENDPOINT_ORIGIN_PROD: Final = "dns.iroh.link."
N0_DNS_ENDPOINT_ORIGIN_STAGING: Final = "staging-dns.iroh.link."

# A non-empty value switches the default relays and lookup services to staging, as in Rust.
ENV_FORCE_STAGING_RELAYS: Final = "IROH_FORCE_STAGING_RELAYS"
