"""``RelayServer``: start, serve and (gracefully) stop an iroh relay."""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ..relay.protocol.frames import Restarting
from ..util.conn_gate import ConnectionGate, GatedAppRunner
from .client_conn import RelayHub
from .config import ServerConfig
from .http import build_app, build_captive_portal_app, build_metrics_app
from .metrics import RelayMetrics
from .qad import QadServer

if TYPE_CHECKING:
    from ..base.relay_url import RelayUrl

__all__ = ["RelayServer", "ServerState"]

log = logging.getLogger(__name__)

# The keep-alive pass runs this often at most; shorter intervals in the config shorten it.
MAX_TICK: Final = 1.0
MIN_TICK: Final = 0.01


class ServerState(enum.Enum):
    """Lifecycle of a :class:`RelayServer`."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class RelayServer:
    """An iroh relay: WebSocket forwarding by EndpointId plus the relay's HTTP endpoints.

    ::

        server = RelayServer(ServerConfig(port=0))
        await server.start()
        print(server.http_url)       # http://127.0.0.1:PORT
        ...
        await server.stop()          # sends Restarting to every client first
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config if config is not None else ServerConfig()
        self.metrics = RelayMetrics()
        self.hub = RelayHub(self.config, self.metrics)
        self.state = ServerState.NEW
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._http_runner: web.AppRunner | None = None
        self._http_port: int | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._metrics_port: int | None = None
        self.qad: QadServer | None = None
        """The QUIC address discovery service, when ``config.qad_port`` is set."""

    @property
    def qad_port(self) -> int | None:
        """The bound QAD UDP port, or None without the service."""
        return self.qad.port if self.qad is not None else None

    def __repr__(self) -> str:
        where = self.http_url if self._port is not None else "unbound"
        return f"RelayServer({where}, {self.state.value}, clients={len(self.hub.conns)})"

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("relay server not started")
        return self._port

    @property
    def metrics_port(self) -> int | None:
        """The bound metrics port, if a separate one was configured."""
        return self._metrics_port

    @property
    def http_url(self) -> str:
        """Base URL clients use, e.g. ``http://127.0.0.1:PORT`` (``https`` with TLS)."""
        scheme = "https" if self.config.tls else "http"
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def url(self) -> RelayUrl:
        """:attr:`http_url` as a :class:`~aioiroh.base.relay_url.RelayUrl`."""
        from ..base.relay_url import RelayUrl

        return RelayUrl(self.http_url)

    @property
    def captive_portal_port(self) -> int | None:
        """The plain-HTTP ``/generate_204`` port of a TLS relay (None if not serving one)."""
        return self._http_port

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.config.tls_cert), str(self.config.tls_key))
        return ctx

    async def start(self) -> None:
        """Bind and start serving."""
        if self.state is not ServerState.NEW:
            raise RuntimeError(f"cannot start a relay server that is {self.state.value}")
        ssl_context = self._ssl_context()
        self.gate = ConnectionGate(self.config.http_max_connections, self.config.http_max_per_ip)
        self._runner = GatedAppRunner(
            build_app(self.hub),
            self.gate,
            access_log=None,
            shutdown_timeout=2.0,
            keepalive_timeout=self.config.http_keepalive_timeout,
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.config.host,
            self.config.port,
            ssl_context=ssl_context,
            backlog=1024,
            reuse_address=True,
        )
        await site.start()
        self._port = _bound_port(site)
        if self.config.metrics_port is not None:
            self._metrics_runner = web.AppRunner(build_metrics_app(self.hub), access_log=None)
            await self._metrics_runner.setup()
            msite = web.TCPSite(self._metrics_runner, self.config.host, self.config.metrics_port)
            await msite.start()
            self._metrics_port = _bound_port(msite)
        if self.config.tls and self.config.http_port is not None:
            self._http_runner = web.AppRunner(build_captive_portal_app(), access_log=None)
            await self._http_runner.setup()
            hsite = web.TCPSite(self._http_runner, self.config.host, self.config.http_port)
            await hsite.start()
            self._http_port = _bound_port(hsite)
        if self.config.qad_port is not None:
            # Same certificate as HTTPS when there is one; else a self-signed one.
            self.qad = QadServer(
                self.config.host,
                self.config.qad_port,
                tls_cert=self.config.tls_cert,
                tls_key=self.config.tls_key,
            )
            await self.qad.start()
        self._ticker = asyncio.create_task(self._tick_loop(), name="relay-keepalive")
        self.state = ServerState.RUNNING
        log.info("relay serving on %s", self.http_url)

    async def _tick_loop(self) -> None:
        config = self.config
        interval = min(
            MAX_TICK, config.ping_interval / 4, config.ping_timeout / 4, config.write_timeout / 4
        )
        interval = max(interval, MIN_TICK)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            self.hub.tick(loop.time())
            metrics = self.metrics
            metrics.http_connections = self.gate.open
            metrics.http_refused_total = self.gate.refused_total
            metrics.http_refused_per_ip = self.gate.refused_per_ip

    async def stop(self, graceful: bool = True) -> None:
        """Stop serving. With ``graceful``, clients get ``Restarting`` before their close."""
        if self.state in (ServerState.STOPPING, ServerState.STOPPED):
            return
        self.state = ServerState.STOPPING
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
        restarting = None
        if graceful:
            restarting = Restarting(
                self.config.restart_reconnect_in_ms, self.config.restart_try_for_ms
            )
        await self.hub.shutdown(restarting)
        if self.qad is not None:
            await self.qad.stop()
        for runner in (self._runner, self._metrics_runner, self._http_runner):
            if runner is not None:
                await runner.cleanup()
        self.state = ServerState.STOPPED

    async def __aenter__(self) -> RelayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio.Server here; no public accessor
    assert server is not None
    sockets: list[socket.socket] = list(server.sockets)  # type: ignore[attr-defined]
    return int(sockets[0].getsockname()[1])
