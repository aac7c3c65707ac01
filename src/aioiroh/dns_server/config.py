"""Configuration of the DNS / pkarr server (``aioiroh dns-server``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_ORIGIN", "DnsServerConfig"]

DEFAULT_ORIGIN: Final = "irohdns.example."
"""Origin used by ``--dev`` when none is given (the one Rust's dev config uses)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsServerConfig:
    """Where the server listens, which zones it serves and the limits it enforces."""

    origins: tuple[str, ...] = (DEFAULT_ORIGIN,)
    """Zones under which ``<name>.<z32>.<origin>`` is answered (absolute names)."""
    http_host: str = "127.0.0.1"
    """Bind address of the HTTP listener (pkarr relay, DoH, health, metrics)."""
    http_port: int = 8080
    """HTTP port; 0 picks a free one."""
    dns_host: str = "127.0.0.1"
    """Bind address of the UDP and TCP DNS listeners."""
    dns_port: int = 5300
    """DNS port for both UDP and TCP; 0 picks a free one (the same for both)."""
    store_path: Path | None = None
    """SQLite file; ``None`` keeps records in memory only."""
    record_max_age: float = 24 * 3600.0
    """Seconds after its last update that a record is expired (iroh republishes every 5 min)."""
    eviction_interval: float = 60.0
    """How often expired records are swept, seconds."""
    max_future_skew: float = 3600.0
    """A packet whose timestamp is further than this in the future is refused, seconds."""
    max_records: int = 1_000_000
    """Bound on stored records; PUTs for new keys are refused beyond it."""
    cache_size: int = 10_000
    """Bound on the in-memory packet cache in front of SQLite."""
    put_rate: float | None = 4.0
    """pkarr PUTs per second allowed per client IP (``None`` disables rate limiting)."""
    put_burst: int = 20
    """Token bucket size for PUTs."""
    rate_limit_clients: int = 100_000
    """Bound on client IPs tracked by the rate limiter (oldest dropped)."""
    soa: str = "ns1.irohdns.example. hostmaster.irohdns.example. 0 10800 3600 604800 3600"
    """SOA rdata served at each origin apex."""
    default_ttl: int = 900
    """TTL of the SOA record."""
    http_keepalive_timeout: float = 10.0
    """An HTTP connection is closed when no complete request header arrived this long after it
    opened or after its last response, seconds (a header-read deadline and keep-alive timeout)."""
    http_max_connections: int = 4096
    """Open HTTP connections at once."""
    http_max_per_ip: int = 64
    """Open HTTP connections from one source IP at once."""
    body_timeout: float = 10.0
    """Deadline for receiving a whole pkarr PUT body, seconds."""
    tcp_idle_timeout: float = 10.0
    """A TCP DNS connection idle this long is closed, seconds."""
    tcp_max_lifetime: float = 30.0
    """A TCP DNS connection is closed this long after it opened, however busy, seconds."""
    tcp_write_timeout: float = 5.0
    """A TCP DNS reply that cannot be written within this closes the connection, seconds."""
    max_tcp_per_ip: int = 16
    """Bound on concurrent TCP DNS connections from one source IP."""
    udp_rrl_rate: float | None = 20.0
    """UDP responses per second per source prefix (/24, /56); ``None`` disables RRL."""
    udp_rrl_burst: int = 40
    """Token bucket size of the UDP response-rate limit."""
    udp_rrl_slip: int = 2
    """Over the UDP limit, every n-th query gets a truncated reply, the rest none (0: none)."""
    max_tcp_connections: int = 512
    """Bound on concurrent TCP DNS connections; more are closed at once."""
    max_inflight_udp: int = 1024
    """Bound on UDP queries being answered concurrently; more are dropped and counted."""
    dht_fallback: bool = False
    """Resolve keys missing from the store through the Mainline DHT (cached 300 s)."""
    dht_bootstrap: tuple[tuple[str, int], ...] | None = None
    """DHT bootstrap nodes; ``None`` means the well-known routers."""
    extra: dict[str, str] = field(default_factory=dict)
    """Free-form labels (shown on ``/``)."""

    def __post_init__(self) -> None:
        origins = tuple(o if o.endswith(".") else o + "." for o in self.origins)
        if not origins:
            raise ValueError("at least one origin is required")
        object.__setattr__(self, "origins", origins)
