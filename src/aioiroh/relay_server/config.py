"""Relay server configuration (values only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ..base.key import EndpointId

__all__ = ["AccessConfig", "RateLimit", "ServerConfig"]

# iroh's PER_CLIENT_SEND_QUEUE_DEPTH (wire doc §5.6).
DEFAULT_SEND_QUEUE: Final = 512
# ... and at most this many bytes of them: 512 full batch frames would be 32 MiB per client.
DEFAULT_SEND_QUEUE_BYTES: Final = 1024 * 1024
# Datagram frames that waited longer than this in a client's send queue are dropped when
# dequeued, like the relay client's own queue (socket/transports/relay.py): QUIC reads the loss
# as congestion and backs off, which keeps the delay toward a slow reader bounded.
DEFAULT_MAX_QUEUE_DELAY: Final = 0.2
# A write that cannot finish in this long marks the client as stuck (defaults.rs).
DEFAULT_WRITE_TIMEOUT: Final = 2.0
# Server pings after this much silence plus a random 1..5 s, like iroh (§5.6).
DEFAULT_PING_INTERVAL: Final = 15.0
DEFAULT_PING_JITTER: Final = (1.0, 5.0)
DEFAULT_PING_TIMEOUT: Final = 5.0
# Time a client gets from the upgrade to a valid ClientAuth.
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
# Connected clients at once; more are refused with 503 before the upgrade.
DEFAULT_MAX_CLIENTS: Final = 10_000
# Older connections one EndpointId may keep open besides its active one (newest wins).
DEFAULT_MAX_INACTIVE_PER_ENDPOINT: Final = 1
# An HTTP connection without a complete request header this long after it opened (or after its
# last response) is closed: the header-read deadline and the keep-alive timeout in one.
DEFAULT_HTTP_KEEPALIVE_TIMEOUT: Final = 10.0
# Distinct destinations remembered per sender for EndpointGone notices.
DEFAULT_MAX_SENT_TO: Final = 4096


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """Who may use the relay. Checks run in order: deny list, allow list, bearer tokens."""

    allow: frozenset[EndpointId] | None = None
    """If set, only these endpoints are accepted."""
    deny: frozenset[EndpointId] = frozenset()
    """These endpoints are always refused."""
    tokens: frozenset[str] | None = None
    """If set, a client must present one of these as ``Authorization: Bearer`` or ``?token=``."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per-client receive limit (token bucket); reading pauses while over it."""

    bytes_per_second: int
    """Sustained rate."""
    max_burst_bytes: int | None = None
    """Bucket size; defaults to (and is at least) the largest WebSocket message, 1 MiB."""


@dataclass(slots=True)
class ServerConfig:
    """Everything a :class:`~aioiroh.relay_server.server.RelayServer` needs."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 0
    """TCP port; 0 picks a free one (see ``RelayServer.port``)."""
    tls_cert: Path | None = None
    """PEM certificate chain; with :attr:`tls_key`, serve HTTPS/WSS."""
    tls_key: Path | None = None
    """PEM private key for :attr:`tls_cert`."""
    access: AccessConfig = field(default_factory=AccessConfig)
    """Access control."""
    rate_limit: RateLimit | None = None
    """Per-client receive rate limit, or None for unlimited."""
    send_queue: int = DEFAULT_SEND_QUEUE
    """Frames queued per client before new ones are dropped (and counted)."""
    send_queue_bytes: int = DEFAULT_SEND_QUEUE_BYTES
    """Bytes of frames queued per client before new ones are dropped (one frame always fits)."""
    max_queue_delay: float | None = DEFAULT_MAX_QUEUE_DELAY
    """Seconds a datagram frame may wait in a client's send queue before it is dropped (and
    counted) instead of sent; control frames are never dropped by age. None = no limit."""
    write_timeout: float = DEFAULT_WRITE_TIMEOUT
    """Seconds a single write may block before the client is disconnected as stuck."""
    ping_interval: float = DEFAULT_PING_INTERVAL
    """Silence (seconds) after which the server pings a client."""
    ping_jitter: tuple[float, float] = DEFAULT_PING_JITTER
    """Uniform random extra delay range added to :attr:`ping_interval`."""
    ping_timeout: float = DEFAULT_PING_TIMEOUT
    """Longest wait for a pong before the client is disconnected."""
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    """Seconds from the upgrade to a verified ClientAuth."""
    max_clients: int = DEFAULT_MAX_CLIENTS
    """Most clients at once: distinct connected EndpointIds plus handshakes in progress (a slot
    is reserved before the upgrade, so concurrent handshakes cannot overshoot it)."""
    max_inactive_per_endpoint: int = DEFAULT_MAX_INACTIVE_PER_ENDPOINT
    """Older connections of one EndpointId kept (inactive) besides the newest; beyond it the
    oldest is closed, so one key cannot pile up connections."""
    http_max_connections: int = 20_000
    """Open TCP connections on the main port at once (clients and everything else)."""
    http_max_per_ip: int = 1024
    """Open TCP connections from one source IP at once (NATs put many clients behind one)."""
    http_keepalive_timeout: float = DEFAULT_HTTP_KEEPALIVE_TIMEOUT
    """Seconds an HTTP connection may wait for a complete request header (after it opened or
    after its last response) before it is closed."""
    max_sent_to: int = DEFAULT_MAX_SENT_TO
    """Per-sender bound on remembered destinations (for EndpointGone)."""
    metrics_port: int | None = None
    """Separate port for ``/metrics`` (also always served on the main port); None = off."""
    restart_reconnect_in_ms: int = 0
    """``Restarting.reconnect_in`` sent on graceful shutdown."""
    restart_try_for_ms: int = 5000
    """``Restarting.try_for`` sent on graceful shutdown."""
    qad_port: int | None = None
    """UDP port of the QUIC address discovery service (iroh: 7842; 0 picks one); None = off."""
    http_port: int | None = None
    """With TLS: a plain-HTTP port for the captive-portal check ``/generate_204`` (iroh serves it
    on port 80; 0 picks one); None = off. Without TLS the main port serves it already."""

    @property
    def tls(self) -> bool:
        """True when certificate and key are both configured."""
        return self.tls_cert is not None and self.tls_key is not None
