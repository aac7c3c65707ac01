"""Prometheus counters of one DNS server instance (own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["DnsServerMetrics"]


class DnsServerMetrics:
    """Counters and gauges; ``render()`` gives the Prometheus text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.pkarr_puts = Counter(
            "iroh_dns_pkarr_puts", "pkarr PUTs by outcome", ["outcome"], registry=r
        )
        self.pkarr_gets = Counter(
            "iroh_dns_pkarr_gets", "pkarr GETs by outcome", ["outcome"], registry=r
        )
        self.dns_queries = Counter(
            "iroh_dns_queries", "DNS queries by transport", ["transport"], registry=r
        )
        self.dns_responses = Counter(
            "iroh_dns_responses", "DNS responses by rcode", ["rcode"], registry=r
        )
        self.dns_dropped = Counter(
            "iroh_dns_dropped", "DNS queries dropped unanswered", ["reason"], registry=r
        )
        self.records_expired = Counter(
            "iroh_dns_records_expired", "records removed by expiry", registry=r
        )
        self.records = Gauge("iroh_dns_records", "records stored", registry=r)
        self.http_connections = Gauge(
            "iroh_dns_http_connections", "open HTTP connections", registry=r
        )
        self.http_refused = Gauge(
            "iroh_dns_http_refused", "HTTP connections refused by cap", ["cap"], registry=r
        )

    def render(self) -> bytes:
        """Prometheus text exposition of this instance's metrics."""
        return generate_latest(self.registry)
