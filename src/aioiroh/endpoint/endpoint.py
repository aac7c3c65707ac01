"""``Endpoint``: bind, dial by key, accept by ALPN."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ..address_lookup.base import AddressLookup
from ..address_lookup.services import AddressLookupServices
from ..base.endpoint_addr import EndpointAddr, TransportAddr, parse_socket_addr
from ..base.key import PublicKey, SecretKey
from ..base.relay_url import RelayUrl
from ..base.ticket import EndpointTicket
from ..dns.endpoint_info import EndpointInfo
from ..errors import ConnectError, ConnectTimeout, EndpointClosed, IrohError, LocallyClosed
from ..portmapper import GatewayDiscovery, PortMapper, PortMapping, default_gateway
from ..quic.aioquic_connection import QuicSettings
from ..socket.driver import ConnectionDriver
from ..socket.interfaces import local_addresses
from ..socket.paths import IpPath, NetworkPath, RelayPath
from ..socket.qad import QadError, probe_qad
from ..socket.socket import MagicSocket
from ..socket.transports.relay import RelayTransport, RelayTransportConfig
from ..util.watch import Watchable
from .connection import Connection
from .relay_mode import RelayMode

if TYPE_CHECKING:
    from .builder import EndpointBuilder, PresetLike

__all__ = ["Endpoint", "EndpointState"]

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
# Established connections waiting for accept(); beyond this new ones are refused.
MAX_ACCEPT_BACKLOG: Final = 256
# Application close code and reason used when the endpoint shuts down.
ENDPOINT_CLOSE_CODE: Final = 0
# Application close code for a peer refused by the accept filter (HTTP's "forbidden").
ACCEPT_REFUSED_CODE: Final = 403

AcceptFilter = Callable[[PublicKey, bytes], bool]
"""``filter(remote_id, alpn) -> accept?``, run on every authenticated incoming connection."""
# QAD (our public address as the home relay sees it) is re-asked this often, like a modest
# net_report cadence; also at once when the home relay or the local addresses change.
QAD_INTERVAL: Final = 30.0
# After a failed QAD probe, try again this soon (the relay may still be starting).
QAD_RETRY: Final = 5.0
# How often the interface address set is checked for changes (moving networks).
NETWORK_CHECK_INTERVAL: Final = 1.5

Target = EndpointAddr | EndpointTicket | PublicKey | str


class EndpointState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


def _log_failure(task: asyncio.Task[None]) -> None:
    """Done callback of a task nobody awaits: retrieve (and log) its error."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.debug("%s failed", task.get_name(), exc_info=exc)


def _parse_bind(addr: str | tuple[str, int] | None, default: tuple[str, int]) -> tuple[str, int]:
    if addr is None:
        return default
    ip, port = parse_socket_addr(addr)
    return (str(ip), port)


class Endpoint:
    """An iroh endpoint: an Ed25519 identity bound to UDP sockets (and relays).

    Create with ``await Endpoint.bind(...)``; close with ``await endpoint.close()`` or use it
    as an async context manager.
    """

    def __init__(
        self, secret_key: SecretKey, alpns: Iterable[bytes], relay_mode: RelayMode
    ) -> None:
        self._secret_key = secret_key
        self._alpns: list[bytes] = [bytes(a) for a in alpns]
        self.relay_mode = relay_mode
        self._relay: RelayTransport | None = None
        self._lookup: AddressLookupServices | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._state = EndpointState.OPEN
        self._accept_queue: deque[Connection] = deque()
        self._accept_waiters: list[asyncio.Future[None]] = []
        self._pending: set[Connection] = set()
        self._connections: set[Connection] = set()
        self._socket: MagicSocket
        self._reflexive: dict[int, tuple[str, int]] = {}
        self._portmapper: PortMapper | None = None
        self._qad_attempted = asyncio.Event()
        self._qad_wakeup = asyncio.Event()
        self._interface_addrs: list[tuple[str, int]] = []

    @classmethod
    def builder(cls, preset: PresetLike | None = None) -> EndpointBuilder:
        """An :class:`~aioiroh.endpoint.builder.EndpointBuilder` starting from ``preset``
        (Rust's ``Endpoint::builder(presets::N0)``); finish it with ``await ....bind()``."""
        from .builder import EndpointBuilder

        return EndpointBuilder(preset)

    @classmethod
    async def bind(
        cls,
        secret_key: SecretKey | None = None,
        *,
        alpns: Sequence[bytes] = (),
        bind_addr: str | tuple[str, int] | None = None,
        bind_addr_v6: str | tuple[str, int] | bool | None = None,
        relay_mode: RelayMode | None = None,
        settings: QuicSettings | None = None,
        relay_config: RelayTransportConfig | None = None,
        address_lookup: Iterable[AddressLookup] | AddressLookupServices | None = None,
        nat_traversal: bool = True,
        hard_nat: bool = False,
        preset: PresetLike | None = None,
        port_mapping: bool | GatewayDiscovery | None = None,
    ) -> Endpoint:
        """Bind a new endpoint.

        ``secret_key``: the identity (a fresh one if None). ``alpns``: protocols accepted as a
        server. ``bind_addr``: IPv4 socket address (default ``0.0.0.0:0``). ``bind_addr_v6``:
        IPv6 socket address (default ``[::]:0``; ``False`` for no IPv6 socket).
        ``relay_mode``: a :class:`RelayMode`. The default is ``RelayMode.disabled()``: unlike
        Rust, aioiroh never reaches n0's public relays unless asked with
        ``RelayMode.default()``. ``address_lookup``: services that publish our addresses
        and resolve others' (pkarr, DNS, mDNS, memory); with them ``connect(endpoint_id)``
        works without addresses. ``nat_traversal``: offer iroh's QUIC NAT traversal so
        relayed connections upgrade to direct paths (turn off to stay on the first path).
        ``hard_nat``: also take part in aioiroh's birthday hard-NAT attempt with peers that
        offer it too: when no direct path exists 2 s after the handshake, both sides send a
        bounded burst of probes from 384 extra sockets and to 2048 random ports per public
        peer IP, which can connect a strict (symmetric) NAT to a port-keeping one. Off by
        default: it is aggressive towards the peer's NAT, and Rust iroh has no counterpart.
        ``preset``: relays and address lookup from an :mod:`aioiroh.presets` preset (e.g.
        ``N0``); ``relay_mode`` and ``address_lookup`` given as well replace its parts.
        ``port_mapping``: ask the default gateway (PCP, NAT-PMP, UPnP IGD) to forward a public
        UDP port to our IPv4 socket and offer that address as a direct candidate (see
        :meth:`port_mapping`). None (default): the preset's choice (on for N0, as
        in Rust), off without a preset because it sends packets to the router. A coroutine
        function instead of ``True`` says where the gateway is (default: the IPv4 default
        route).
        """
        if port_mapping is None:
            # The preset decides (N0 maps, as Rust does); without one nothing goes to the router.
            port_mapping = bool(getattr(preset, "port_mapping", False))
        if preset is not None:
            from .builder import apply_preset

            secret_key = secret_key or SecretKey.generate()
            relay_mode, address_lookup = apply_preset(
                preset, secret_key, relay_mode, address_lookup
            )
        ep = cls(secret_key or SecretKey.generate(), alpns, relay_mode or RelayMode.disabled())
        ep._socket = MagicSocket(
            ep._secret_key,
            alpns=lambda: ep._alpns,
            on_incoming=ep._on_incoming,
            settings=settings,
        )
        v4 = _parse_bind(bind_addr, ("0.0.0.0", 0))
        v6: tuple[str, int] | None
        if bind_addr_v6 is False:
            v6 = None
        elif bind_addr_v6 is None or bind_addr_v6 is True:
            # Loopback-only IPv4 gets loopback-only IPv6, so tests stay on ::1.
            v6 = ("::1", 0) if v4[0].startswith("127.") else ("::", 0)
        else:
            v6 = _parse_bind(bind_addr_v6, ("::", 0))
        ep._socket.nat_traversal = nat_traversal
        ep._socket.hard_nat = hard_nat and nat_traversal
        ep._socket.local_candidates = ep._candidate_addresses
        ep._socket.bind(v4, v6)
        if port_mapping is True and v4[0].startswith("127."):
            port_mapping = False  # a loopback socket has nothing the default gateway could map
        if port_mapping:
            ep._start_port_mapping(default_gateway if port_mapping is True else port_mapping)
        relay_map = ep.relay_mode.relay_map()
        if len(relay_map):
            relay = RelayTransport(
                ep._secret_key, relay_map, ep._socket.on_relay_datagram, config=relay_config
            )
            ep._relay = relay
            ep._socket.relay = relay
            await relay.start()
            ep._spawn(ep._qad_loop(), "aioiroh-qad")
        else:
            ep._qad_attempted.set()
        ep._interface_addrs = ep._interface_addresses()
        ep._spawn(ep._network_monitor(), "aioiroh-netmon")
        if address_lookup is not None:
            lookup = (
                address_lookup
                if isinstance(address_lookup, AddressLookupServices)
                else AddressLookupServices(address_lookup)
            )
            ep._lookup = lookup
            for service in lookup.services:
                start = getattr(service, "start", None)
                if start is not None and asyncio.iscoroutinefunction(start):
                    await start()
            ep._spawn(ep._publish_loop(), "aioiroh-publish")
        return ep

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def endpoint_info(self) -> EndpointInfo:
        """What we publish about ourselves: home relay and direct addresses."""
        home = self.home_relay
        return EndpointInfo(
            self.id,
            relay_urls=(home,) if home else (),
            direct_addresses=tuple(self.direct_addresses()),
        )

    async def _publish_loop(self) -> None:
        """Publish our info now and again whenever the home relay changes."""
        assert self._lookup is not None
        self._lookup.publish(self.endpoint_info())
        if self._relay is None:
            return
        watcher = self._relay.home_relay.watch()
        async for _ in watcher:
            self._lookup.publish(self.endpoint_info())

    # -- QUIC address discovery and network changes ----------------------------------------

    async def _qad_loop(self) -> None:
        """Learn our public address from the home relay's QAD service (wire doc §5.9).

        Runs at start, whenever the home relay or our interface addresses change, and every
        :data:`QAD_INTERVAL` seconds. A new answer becomes a local candidate address.
        """
        assert self._relay is not None
        home = self._relay.home_relay
        last_home: RelayUrl | None = None
        while not home.closed:
            url = home.get()
            if url is None:
                await self._wait_wakeup(home, QAD_RETRY, None)
                continue
            config = self._relay.relay_map.get(url)
            if config is None or config.quic_port is None:
                self._qad_attempted.set()
                await self._wait_wakeup(home, None, url)
                continue
            if url != last_home:
                self._reflexive.clear()
                last_home = url
            found = await self._qad_probe(url.host, config.quic_port)
            self._qad_attempted.set()
            delay = QAD_INTERVAL if found else QAD_RETRY
            await self._wait_wakeup(home, delay, url)

    async def _qad_probe(self, host: str, port: int) -> bool:
        """Ask the QAD service at ``host:port`` (over our UDP socket); True if it answered."""
        try:
            addr = await probe_qad(self._socket, host, port)
        except QadError as exc:
            logger.debug("QAD probe of %s:%d failed: %s", host, port, exc)
            return False
        family = 6 if ":" in addr[0] else 4
        if self._reflexive.get(family) != addr:
            logger.info("QAD: public address %s:%d", *addr)
            self._reflexive[family] = addr
            self._local_addresses_changed()
        return True

    async def _wait_wakeup(
        self, home: Watchable[RelayUrl | None], timeout: float | None, url: RelayUrl | None
    ) -> None:
        """Sleep until ``timeout``, a forced wakeup, or a home relay other than ``url``."""
        tasks = [
            asyncio.ensure_future(self._qad_wakeup.wait()),
            asyncio.ensure_future(home.wait_for(lambda value: value != url)),
        ]
        try:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._qad_wakeup.clear()

    def _interface_addresses(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for host, port in self.bound_sockets():
            if host in ("0.0.0.0", "::"):
                out.extend((a, port) for a in local_addresses(ipv6=host == "::"))
            else:
                out.append((host, port))
        return out

    async def _network_monitor(self) -> None:
        """Notice interface address changes (a new network): re-ask QAD, re-announce."""
        while True:
            await asyncio.sleep(NETWORK_CHECK_INTERVAL)
            now = self._interface_addresses()
            if now != self._interface_addrs:
                logger.info("local addresses changed: %s -> %s", self._interface_addrs, now)
                self._interface_addrs = now
                # The old NAT mapping is meaningless on a new network.
                self._reflexive.clear()
                self._local_addresses_changed(moved=True)
                self._qad_wakeup.set()
                if self._portmapper is not None:
                    self._portmapper.network_changed()
                if self._relay is not None:
                    # Relay latencies from the old network say nothing about the new one.
                    self._relay.network_changed()

    def _local_addresses_changed(self, *, moved: bool = False) -> None:
        """Our candidate set changed: tell live connections (new holepunch round) and lookups.

        ``moved``: the interface addresses changed, so existing direct paths may be dead.
        """
        for driver in list(self._socket.drivers):
            if moved:
                driver.on_network_change()
            else:
                driver.refresh_candidates()
        if self._lookup is not None:
            self._lookup.publish(self.endpoint_info())

    async def reflexive_addresses(self, timeout: float = 10.0) -> list[tuple[str, int]]:
        """Our public addresses as the home relay's QAD service sees them.

        Waits (up to ``timeout``) for the first QAD attempt; empty without relays, without a
        QAD port, or when the relay did not answer.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._qad_attempted.wait(), timeout)
        return list(self._reflexive.values())

    # -- identity and addresses ------------------------------------------------------------

    @property
    def id(self) -> PublicKey:
        """This endpoint's id: the public half of its secret key."""
        return self._secret_key.public()

    @property
    def secret_key(self) -> SecretKey:
        """This endpoint's secret key (its identity)."""
        return self._secret_key

    @property
    def state(self) -> EndpointState:
        """Lifecycle state: bound, closing or closed."""
        return self._state

    def bound_sockets(self) -> list[tuple[str, int]]:
        """The local socket addresses, IPv4 first."""
        return self._socket.local_addrs()

    def direct_addresses(self) -> list[tuple[str, int]]:
        """Addresses a peer can dial us on directly: interface addresses of the bound sockets
        (unspecified binds expanded) plus the public addresses QAD reported and the router's
        port mapping (see :meth:`port_mapping`)."""
        out = self._interface_addresses()
        for addr in self._public_addresses():
            if addr not in out:
                out.append(addr)
        return out

    def _candidate_addresses(self) -> list[tuple[str, int]]:
        """Our NAT traversal candidates for a new connection: like :meth:`direct_addresses`,
        but from the interface addresses the network monitor keeps (enumerating interfaces
        costs ~50 us, too much per connection; a change re-announces to every connection)."""
        out = list(self._interface_addrs)
        for addr in self._public_addresses():
            if addr not in out:
                out.append(addr)
        return out

    def _public_addresses(self) -> list[tuple[str, int]]:
        """QAD-reflexive addresses, then the gateway's port mapping (they differ behind a
        double NAT; both are worth trying)."""
        out = list(self._reflexive.values())
        mapping = self._portmapper.mapping() if self._portmapper is not None else None
        if mapping is not None:
            out.append(mapping.external_addr)
        return out

    # -- port mapping ----------------------------------------------------------------------

    def _start_port_mapping(self, gateway: GatewayDiscovery) -> None:
        v4 = [a for a in self._socket.local_addrs() if ":" not in a[0]]
        if not v4:
            return
        self._portmapper = PortMapper(v4[0][1], gateway=gateway, on_change=self._on_port_mapping)
        self._portmapper.start()

    def _on_port_mapping(self, mapping: PortMapping | None) -> None:
        if self._state is EndpointState.OPEN:
            self._local_addresses_changed()

    def port_mapping(self) -> PortMapping | None:
        """The router's port mapping for our IPv4 socket: protocol ("pcp", "nat-pmp",
        "upnp"), external address and lease; None when off, pending, or refused."""
        return self._portmapper.mapping() if self._portmapper is not None else None

    @property
    def home_relay(self) -> RelayUrl | None:
        """The relay we are reachable through (None before one is chosen, or without relays)."""
        return self._relay.home_relay.get() if self._relay is not None else None

    def addr(self) -> EndpointAddr:
        """This endpoint's address: id, home relay and direct addresses."""
        return EndpointAddr(self.id, self.home_relay, self.direct_addresses())

    async def online(self) -> None:
        """Wait until the home relay connection is up (returns at once without relays)."""
        if self._relay is not None:
            await self._relay.online()

    def ticket(self) -> EndpointTicket:
        """An :class:`EndpointTicket` for :meth:`addr`, to hand to a peer."""
        return EndpointTicket(self.addr())

    def set_alpns(self, alpns: Iterable[bytes]) -> None:
        """Replace the ALPNs accepted for incoming connections."""
        self._alpns = [bytes(a) for a in alpns]

    @property
    def alpns(self) -> list[bytes]:
        """The ALPNs this endpoint accepts, in preference order."""
        return list(self._alpns)

    # -- dialing ---------------------------------------------------------------------------

    def _resolve(self, target: Target) -> EndpointAddr:
        if isinstance(target, EndpointTicket):
            return target.addr
        if isinstance(target, EndpointAddr):
            return target
        if isinstance(target, PublicKey):
            return EndpointAddr(target)
        if isinstance(target, str):
            if target.startswith("endpoint"):
                return EndpointTicket.parse(target).addr
            return EndpointAddr(PublicKey.parse(target))
        raise TypeError(f"cannot dial {type(target).__name__}")

    def _paths_for(self, addr: EndpointAddr) -> list[NetworkPath]:
        has_v6 = self._socket.udp6 is not None
        has_v4 = self._socket.udp4 is not None
        own = set(self.bound_sockets())
        paths: list[NetworkPath] = []
        for host, port in addr.direct_addresses:
            path = IpPath(host, port)
            if (host, port) in own:
                continue
            if (path.is_ipv6 and has_v6) or (not path.is_ipv6 and has_v4):
                paths.append(path)
        if self._relay is not None:
            paths.extend(RelayPath(url, addr.id) for url in addr.relay_urls)
        return paths

    async def connect(
        self, target: Target, alpn: bytes, *, timeout: float = DEFAULT_CONNECT_TIMEOUT
    ) -> Connection:
        """Connect to ``target`` (an EndpointAddr, EndpointTicket, or EndpointId) on ``alpn``.

        Raises :class:`ConnectTimeout` if nobody answers, :class:`AuthenticationError` if the
        peer's key is not the one dialed, :class:`AlpnMismatchError` if it refuses the ALPN.
        """
        self._check_open()
        if not alpn:
            raise ValueError("an ALPN is required")
        addr = self._resolve(target)
        paths = self._paths_for(addr)
        if not paths and self._lookup is not None:
            addr = await self._lookup_addr(addr, timeout)
            paths = self._paths_for(addr)
        if not paths:
            raise ConnectError(f"no usable address for endpoint {addr.id.fmt_short()}")
        driver = self._socket.dial(addr.id, paths, bytes(alpn))
        conn = Connection(driver)
        self._pending.add(conn)
        driver.flush()
        refresher = None
        if self._lookup is not None:
            refresher = self._spawn(self._refresh_candidates(driver, addr), "aioiroh-dial-lookup")
            refresher.add_done_callback(_log_failure)
        try:
            # Awaited directly under asyncio.timeout: the task resumes one loop turn after the
            # handshake completes (wait_for(shield(...)) took three turns, ~1 ms when busy).
            # A timeout or cancellation cancels conn.handshake too; the driver is aborted then.
            async with asyncio.timeout(timeout):
                await conn.handshake
        except TimeoutError:
            driver.abort()
            raise ConnectTimeout(
                f"no answer from {addr.id.fmt_short()} within {timeout:g}s"
            ) from None
        except asyncio.CancelledError:
            driver.abort()
            raise
        finally:
            self._pending.discard(conn)
            if refresher is not None:
                # It winds down (closing the lookup streams) on its own: waiting for that took
                # several loop turns after the handshake. Endpoint.close() still awaits it.
                refresher.cancel()
        self._track(conn)
        return conn

    async def _refresh_candidates(self, driver: ConnectionDriver, addr: EndpointAddr) -> None:
        """While a dial is in flight, add paths that address lookup reports (fresh results)."""
        assert self._lookup is not None
        stream = self._lookup.resolve(addr.id)
        if stream is None:
            return
        with contextlib.suppress(IrohError):
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for item in stream:
                    info = item.endpoint_info
                    fresh = addr.with_addrs(
                        [
                            *(TransportAddr.ip(a) for a in info.direct_addresses),
                            *(TransportAddr.relay(u) for u in info.relay_urls),
                        ]
                    )
                    for path in self._paths_for(fresh):
                        if path not in driver.candidates:
                            driver.candidates.append(path)

    async def _lookup_addr(self, addr: EndpointAddr, timeout: float) -> EndpointAddr:
        """Ask the address lookup services; the first result with a usable path wins."""
        assert self._lookup is not None
        stream = self._lookup.resolve(addr.id)
        if stream is None:
            return addr

        async def first() -> EndpointAddr:
            found = addr
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for item in stream:
                    info = item.endpoint_info
                    found = found.with_addrs(
                        [
                            *(TransportAddr.ip(a) for a in info.direct_addresses),
                            *(TransportAddr.relay(u) for u in info.relay_urls),
                        ]
                    )
                    if self._paths_for(found):
                        return found
            return found

        try:
            return await asyncio.wait_for(first(), timeout)
        except TimeoutError:
            raise ConnectTimeout(
                f"address lookup found nothing for {addr.id.fmt_short()} in {timeout:g}s"
            ) from None
        except IrohError as exc:
            raise ConnectError(f"address lookup failed for {addr.id.fmt_short()}: {exc}") from exc

    # -- accepting -------------------------------------------------------------------------

    def _on_incoming(self, driver: ConnectionDriver) -> None:
        conn = Connection(driver)
        self._pending.add(conn)
        # Success is handled at once (the accept waiter wakes one loop turn earlier than from
        # a done callback); failures through the future's done callback.
        conn._on_established = lambda: self._on_handshake(conn, conn.handshake)
        conn.handshake.add_done_callback(lambda fut: self._on_handshake(conn, fut))

    def _on_handshake(self, conn: Connection, fut: asyncio.Future[None]) -> None:
        if conn not in self._pending:
            return  # handled already
        self._pending.discard(conn)
        self._socket.incoming_finished(conn._driver)
        if fut.cancelled() or fut.exception() is not None:
            return
        # Refusals close from their own callback, not from inside the engine's event dispatch.
        if self._state is not EndpointState.OPEN or len(self._accept_queue) >= MAX_ACCEPT_BACKLOG:
            self._track(conn)
            conn._loop.call_soon(conn.close, 1, b"endpoint not accepting")
            return
        if conn._quic.peer_id is None or not conn.alpn:
            self._track(conn)
            conn._loop.call_soon(conn.close, 1, b"authentication required")
            return
        accept_filter = self._accept_filter
        if accept_filter is not None and not accept_filter(conn.remote_id, conn.alpn):
            logger.info("refused %s: not allowed by the accept filter", conn.remote_id.fmt_short())
            self._track(conn)
            conn._loop.call_soon(conn.close, ACCEPT_REFUSED_CODE, b"not allowed")
            return
        self._track(conn)
        self._accept_queue.append(conn)
        waiters, self._accept_waiters = self._accept_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    _accept_filter: AcceptFilter | None = None

    def set_accept_filter(self, accept_filter: AcceptFilter | None) -> None:
        """Refuse incoming connections ``accept_filter(remote_id, alpn)`` returns False for.

        Refused peers are closed with :data:`ACCEPT_REFUSED_CODE` ("not allowed") and logged;
        they never reach :meth:`accept`. ``None`` accepts every authenticated peer again.
        """
        self._accept_filter = accept_filter

    def _track(self, conn: Connection) -> None:
        self._connections.add(conn)
        conn._closed.add_done_callback(lambda _: self._connections.discard(conn))

    async def accept(self) -> Connection:
        """Wait for the next incoming connection, handshake done and peer authenticated."""
        while True:
            while self._accept_queue:
                conn = self._accept_queue.popleft()
                if conn.close_reason() is None:
                    return conn
            self._check_open()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._accept_waiters.append(fut)
            await fut

    def _check_open(self) -> None:
        if self._state is not EndpointState.OPEN:
            raise EndpointClosed("endpoint is closed")

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every connection (code 0) and release the sockets."""
        if self._state is not EndpointState.OPEN:
            return
        self._state = EndpointState.CLOSING
        self._socket.accepting = False
        for conn in list(self._connections) + list(self._pending):
            conn.close(ENDPOINT_CLOSE_CODE, b"endpoint closing")
        # Let the close frames go out before the sockets go away.
        for driver in list(self._socket.drivers):
            driver.flush()
        await asyncio.sleep(0)
        self._socket.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._portmapper is not None:
            await self._portmapper.close()
        if self._relay is not None:
            await self._relay.close()
        if self._lookup is not None:
            await self._lookup.aclose()
        for conn in list(self._connections) + list(self._pending):
            conn._finish(LocallyClosed("endpoint closed", code=ENDPOINT_CLOSE_CODE))
        self._state = EndpointState.CLOSED
        waiters, self._accept_waiters = self._accept_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def __aenter__(self) -> Endpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Endpoint(id={self.id.fmt_short()}, state={self._state.value})"
