"""Relay server counters, exported on ``/metrics`` with the ``relay_`` prefix."""

from __future__ import annotations

from .._metrics import MetricsGroup

__all__ = ["RelayMetrics"]


class RelayMetrics(MetricsGroup):
    """Counters of one relay server; attributes are plain ints (see :class:`MetricsGroup`)."""

    PREFIX = "relay_"
    COUNTERS = {
        "accepts": "Clients that completed the handshake",
        "disconnects": "Client connections that ended",
        "bytes_recv": "Bytes received from clients in relay frames",
        "bytes_sent": "Bytes sent to clients in relay frames",
        "frames_recv": "Relay frames received from clients",
        "frames_sent": "Relay frames sent to clients",
        "datagram_frames_forwarded": "Datagram frames queued to their destination",
        "datagrams_forwarded": "Individual datagrams (batch segments) queued to their destination",
        "dropped_unknown_dst": "Datagram frames dropped: destination not connected",
        "dropped_queue_full": "Frames dropped: destination send queue full",
        "dropped_queue_delay": "Datagram frames dropped: waited in the send queue too long",
        "pings_recv": "Pings received from clients",
        "pings_sent": "Pings sent to clients",
        "auth_failures": "Handshakes failed: bad signature, malformed or missing ClientAuth",
        "access_denied": "Handshakes refused by access control",
        "bad_upgrades": "Upgrade requests refused (wrong subprotocol, not a WebSocket, full)",
        "protocol_errors": "Clients closed for sending malformed or unexpected frames",
        "oversized_messages": "Clients closed for sending a WebSocket message over the limit",
        "ping_timeouts": "Clients closed for not answering a ping in time",
        "slow_clients": "Clients closed because a write blocked past the write timeout",
        "rate_limited": "Times a client's reading was paused by the rate limit",
        "same_id_replaced": "Connections made inactive by a newer one with the same EndpointId",
        "same_id_closed": "Inactive connections closed: too many for one EndpointId",
        "full_refused": "Upgrades refused with 503 because max_clients slots were taken",
        "endpoint_gone_sent": "EndpointGone notices queued",
    }
    GAUGES = {
        "clients": "Connected (authenticated) client connections",
        "handshaking": "Upgrades holding a max_clients slot while their handshake runs",
        "http_connections": "Open TCP connections on the main port",
        "http_refused_total": "TCP connections refused: http_max_connections reached",
        "http_refused_per_ip": "TCP connections refused: http_max_per_ip reached",
    }

    # Declared for type checkers; MetricsGroup sets each to 0.
    accepts: int
    disconnects: int
    bytes_recv: int
    bytes_sent: int
    frames_recv: int
    frames_sent: int
    datagram_frames_forwarded: int
    datagrams_forwarded: int
    dropped_unknown_dst: int
    dropped_queue_full: int
    dropped_queue_delay: int
    pings_recv: int
    pings_sent: int
    auth_failures: int
    access_denied: int
    bad_upgrades: int
    protocol_errors: int
    oversized_messages: int
    ping_timeouts: int
    slow_clients: int
    rate_limited: int
    same_id_replaced: int
    same_id_closed: int
    full_refused: int
    endpoint_gone_sent: int
    clients: int
    handshaking: int
    http_connections: int
    http_refused_total: int
    http_refused_per_ip: int
