"""``DnsServer``: pkarr relay + authoritative DNS for ``_iroh.<z32>.<origin>`` records."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from typing import Final

import dns.rcode
from aiohttp import web

from ..dns.pkarr import SignedPacket
from ..util.conn_gate import ConnectionGate, GatedAppRunner
from .config import DnsServerConfig
from .dht_fallback import DhtFallback
from .dns import DnsListeners
from .http import build_app
from .metrics import DnsServerMetrics
from .rate_limit import RateLimiter, ResponseRateLimiter
from .store import PacketStore, PutResult
from .zone import Zone

__all__ = ["DnsServer", "ServerState"]

log = logging.getLogger(__name__)

_MICROS: Final = 1_000_000


class ServerState(enum.Enum):
    """Lifecycle of a :class:`DnsServer`."""

    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class DnsServer:
    """Serves pkarr PUT/GET and DoH over HTTP, and DNS over UDP and TCP.

    Use ``async with DnsServer(config) as server:`` or :meth:`start` / :meth:`stop`.
    """

    def __init__(self, config: DnsServerConfig) -> None:
        self.config = config
        self.metrics = DnsServerMetrics()
        self.store = PacketStore(
            config.store_path, max_records=config.max_records, cache_size=config.cache_size
        )
        self.zone = Zone(config.origins, soa=config.soa, soa_ttl=config.default_ttl)
        self._limiter = (
            RateLimiter(config.put_rate, config.put_burst, max_keys=config.rate_limit_clients)
            if config.put_rate is not None
            else None
        )
        self._listeners = DnsListeners(
            self._handle_dns_listener,
            max_inflight_udp=config.max_inflight_udp,
            max_tcp_connections=config.max_tcp_connections,
            tcp_idle_timeout=config.tcp_idle_timeout,
            tcp_max_lifetime=config.tcp_max_lifetime,
            tcp_write_timeout=config.tcp_write_timeout,
            max_tcp_per_ip=config.max_tcp_per_ip,
            rrl=(
                ResponseRateLimiter(
                    config.udp_rrl_rate,
                    config.udp_rrl_burst,
                    slip=config.udp_rrl_slip,
                    max_prefixes=config.rate_limit_clients,
                )
                if config.udp_rrl_rate is not None
                else None
            ),
            on_drop=lambda reason: self.metrics.dns_dropped.labels(reason).inc(),
        )
        self.dht_fallback: DhtFallback | None = None
        if config.dht_fallback:
            self.dht_fallback = (
                DhtFallback()
                if config.dht_bootstrap is None
                else DhtFallback(bootstrap=config.dht_bootstrap)
            )
        self.http_gate = ConnectionGate(config.http_max_connections, config.http_max_per_ip)
        self._runner: web.AppRunner | None = None
        self._evictor: asyncio.Task[None] | None = None
        self.state = ServerState.NEW
        self.http_addr: tuple[str, int] | None = None
        self.dns_addr: tuple[str, int] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and bind all listeners."""
        if self.state is not ServerState.NEW:
            raise RuntimeError(f"cannot start a server that is {self.state.value}")
        await self.store.open()
        try:
            if self.dht_fallback is not None:
                await self.dht_fallback.start()
            self._runner = GatedAppRunner(
                build_app(self),
                self.http_gate,
                access_log=None,
                keepalive_timeout=self.config.http_keepalive_timeout,
            )
            await self._runner.setup()
            cfg = self.config
            shared = cfg.http_port == cfg.dns_port and cfg.http_host == cfg.dns_host
            if shared:
                # One port for HTTP and DNS: the TCP listener sniffs the first byte.
                self.dns_addr = await self._listeners.start(
                    cfg.dns_host, cfg.dns_port, http_factory=self._runner.server
                )
                self.http_addr = self.dns_addr
            else:
                self.dns_addr = await self._listeners.start(cfg.dns_host, cfg.dns_port)
                site = web.TCPSite(self._runner, cfg.http_host, cfg.http_port)
                await site.start()
                server = site._server  # aiohttp keeps the bound asyncio.Server private
                assert isinstance(server, asyncio.base_events.Server)
                self.http_addr = server.sockets[0].getsockname()[:2]
        except BaseException:
            await self._teardown()
            raise
        self._evictor = asyncio.get_running_loop().create_task(
            self._evict_loop(), name="dns-server-evict"
        )
        self.state = ServerState.RUNNING
        log.info(
            "DNS server: http %s, dns %s, origins %s",
            self.http_addr,
            self.dns_addr,
            self.config.origins,
        )

    async def stop(self) -> None:
        """Stop listening, finish the store and release everything."""
        if self.state is ServerState.CLOSED:
            return
        self.state = ServerState.CLOSED
        await self._teardown()

    async def _teardown(self) -> None:
        if self._evictor is not None:
            self._evictor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._evictor
            self._evictor = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._listeners.stop()
        if self.dht_fallback is not None:
            await self.dht_fallback.aclose()
        await self.store.close()

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the HTTP listener."""
        assert self.http_addr is not None
        host, port = self.http_addr
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    @property
    def pkarr_url(self) -> str:
        """Base URL of the pkarr relay API (``…/pkarr``)."""
        return f"{self.http_url}/pkarr"

    # -- behaviour --------------------------------------------------------------------------

    def allow_put(self, client: str) -> bool:
        """Rate limit check for one PUT from ``client``."""
        return self._limiter is None or self._limiter.allow(client, time.monotonic())

    async def publish(self, packet: SignedPacket) -> tuple[int, str]:
        """Store a verified packet; return an HTTP status and message."""
        now = time.time()
        if packet.timestamp > (now + self.config.max_future_skew) * _MICROS:
            self.metrics.pkarr_puts.labels("future").inc()
            return 400, "timestamp too far in the future"
        if packet.timestamp < (now - self.config.record_max_age) * _MICROS:
            self.metrics.pkarr_puts.labels("expired").inc()
            return 400, "timestamp too old"
        result = await self.store.put(packet, now=now)
        self.metrics.pkarr_puts.labels(result.value).inc()
        if result is PutResult.STALE:
            return 409, "a more recent packet is already stored"
        if result is PutResult.FULL:
            return 507, "store is full"
        return 204, ""

    async def _handle_dns_listener(self, wire: bytes, udp: bool) -> bytes | None:
        return await self.handle_dns(wire, transport="udp" if udp else "tcp")

    async def handle_dns(self, wire: bytes, *, transport: str) -> bytes | None:
        """Answer one DNS query; ``None`` means drop it."""
        self.metrics.dns_queries.labels(transport).inc()
        udp = transport == "udp"
        query = self.zone.decode(wire, udp=udp)
        if query.key is None:
            reply = query.reply
        else:
            packet = await self.store.get(query.key)
            if packet is None and self.dht_fallback is not None:
                packet = await self.dht_fallback.get(query.key)
            reply = self.zone.answer(query, packet, udp=udp)
        if reply is None:
            self.metrics.dns_dropped.labels("unparseable").inc()
            return None
        self.metrics.dns_responses.labels(dns.rcode.to_text(query.rcode_hint)).inc()
        return reply

    async def expire(self) -> int:
        """Remove records not updated within ``record_max_age``; return how many."""
        removed = await self.store.expire(older_than=time.time() - self.config.record_max_age)
        if removed:
            self.metrics.records_expired.inc(removed)
            log.debug("expired %d records", removed)
        return removed

    async def _evict_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.eviction_interval)
            try:
                await self.expire()
            except Exception:
                log.exception("record expiry failed")

    def __repr__(self) -> str:
        return f"DnsServer({self.state.value}, http={self.http_addr}, dns={self.dns_addr})"
