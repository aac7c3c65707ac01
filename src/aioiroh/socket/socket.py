"""The magic socket: owns the transports and routes QUIC datagrams to connections.

Inbound datagrams are routed by destination connection ID (iroh uses 8-byte CIDs, so short
headers are routed with one slice and one dict lookup); an unknown Initial creates a server
connection. Outbound datagrams go out on the transport their path names.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Callable
from typing import Any, Final, Protocol

from aioquic.buffer import Buffer, BufferReadError
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from ..base.key import PublicKey, SecretKey
from ..base.relay_url import RelayUrl
from ..quic.aioquic_connection import CID_LENGTH, QuicSettings
from ..quic.connection import ENGINE_ENV, new_connection
from ..quic.incoming import initial_decrypts
from ..quic.retry import RetryTokens, build_retry
from .driver import ConnectionDriver
from .hard_nat import decode_probe
from .interfaces import local_addresses
from .paths import DialTarget, IpPath, NetworkPath, RelayPath
from .transports.relay import RelayTransport
from .udp import Batch, UdpSocket

logger = logging.getLogger(__name__)

# Handshakes we are willing to run at once as a server; more Initials are dropped.
MAX_PENDING_INCOMING: Final = 256
MAX_PENDING_PER_SOURCE: Final = 16
"""Pending server handshakes one source (IP address, or relayed peer) may hold at once."""
RETRY_THRESHOLD: Final = MAX_PENDING_INCOMING // 2
"""Pending handshakes from which a token-less Initial over UDP is answered with a Retry."""
# Extra sockets all birthday attempts may hold at once (file descriptors are finite).
MAX_AUX_SOCKETS: Final = 1024
# RFC 9000 §14.1: a client's first datagram is at least 1200 bytes.
MIN_INITIAL_SIZE: Final = 1200
QUIC_V1: Final = 1


class Routable(Protocol):
    """What the demultiplexer routes datagrams to: a connection driver or a QAD probe."""

    @property
    def closed(self) -> bool: ...
    def receive(self, data: bytes, path: NetworkPath, now: float) -> None: ...
    def flush(self) -> None: ...


class SocketStats:
    __slots__ = (
        "dropped_incoming",
        "dropped_malformed",
        "dropped_unknown_cid",
        "dropped_unknown_probe",
        "recv_datagrams",
        "retries_sent",
    )

    def __init__(self) -> None:
        self.recv_datagrams = 0
        self.dropped_unknown_cid = 0
        self.dropped_malformed = 0
        self.dropped_incoming = 0
        self.dropped_unknown_probe = 0
        self.retries_sent = 0


class MagicSocket:
    """UDP (IPv4 + IPv6) transports plus connection-ID demultiplexing."""

    def __init__(
        self,
        secret_key: SecretKey,
        *,
        alpns: Callable[[], list[bytes]],
        on_incoming: Callable[[ConnectionDriver], None],
        settings: QuicSettings | None = None,
    ) -> None:
        self.secret_key = secret_key
        self._alpns = alpns
        self._on_incoming = on_incoming
        self.settings = settings or QuicSettings()
        self.udp4: UdpSocket | None = None
        self.udp6: UdpSocket | None = None
        self.relay: RelayTransport | None = None
        self._relay_flush_scheduled = False
        self._cids: dict[bytes, Routable] = {}
        self._drivers: set[ConnectionDriver] = set()
        self._pending_incoming = 0
        # Pending server handshakes by source, and the source of each pending driver.
        self._pending_by_source: dict[object, int] = {}
        self._pending_source: dict[ConnectionDriver, object] = {}
        self._retry_tokens = RetryTokens()
        self.retry_threshold = RETRY_THRESHOLD
        """Pending handshakes from which new UDP clients must prove their address (Retry)."""
        self._touched: list[Routable] = []
        self.stats = SocketStats()
        self.loop = asyncio.get_running_loop()
        self.accepting = True
        self.local_candidates: Callable[[], list[tuple[str, int]]] | None = None
        """Hook: our NAT traversal candidates (default: the bound sockets' addresses)."""
        self.nat_traversal = True
        """Offer n0 NAT traversal on new connections (False keeps relayed connections relayed)."""
        self.hard_nat = False
        """Offer (and run) the birthday hard-NAT attempt on new connections (hard_nat.py)."""
        self.blackholed: set[NetworkPath] = set()
        """Test switch: datagrams to or from these paths are dropped (a cut network path)."""
        # Extra sockets of birthday attempts by id (IpPath.local), and probe token -> driver.
        self._aux: dict[int, UdpSocket] = {}
        self._aux_next = 1
        self._probe_routes: dict[bytes, ConnectionDriver] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def bind(self, v4: tuple[str, int] | None, v6: tuple[str, int] | None) -> None:
        if v4 is not None:
            self.udp4 = UdpSocket(socket.AF_INET, v4[0], v4[1], self._on_udp_batch)
        if v6 is not None:
            try:
                self.udp6 = UdpSocket(socket.AF_INET6, v6[0], v6[1], self._on_udp_batch)
            except OSError as exc:  # a host without IPv6 still works on IPv4
                if self.udp4 is None:
                    raise
                logger.info("no IPv6 socket: %s", exc)

    def local_addrs(self) -> list[tuple[str, int]]:
        return [u.local_addr for u in (self.udp4, self.udp6) if u is not None]

    def candidate_addrs(self) -> list[tuple[str, int]]:
        """Addresses peers may reach us on directly, offered to them for holepunching."""
        if self.local_candidates is not None:
            return self.local_candidates()
        out: list[tuple[str, int]] = []
        for host, port in self.local_addrs():
            if host in ("0.0.0.0", "::"):
                out.extend((a, port) for a in local_addresses(ipv6=host == "::"))
            else:
                out.append((host, port))
        return out

    @property
    def drivers(self) -> set[ConnectionDriver]:
        return self._drivers

    def close(self) -> None:
        for driver in list(self._drivers):
            driver.abort()
        for udp in (self.udp4, self.udp6, *self._aux.values()):
            if udp is not None:
                udp.close()
        self._aux.clear()

    # -- extra sockets (birthday hard-NAT attempts) ----------------------------------------

    def open_aux_sockets(self, count: int) -> list[int]:
        """Open up to ``count`` extra IPv4 sockets on our IPv4 address; returns their ids.

        Fewer come back beyond :data:`MAX_AUX_SOCKETS` open ones in all, or if the process
        runs out of file descriptors.
        """
        if self.udp4 is None:
            return []
        host = self.udp4.local_addr[0]
        ids: list[int] = []
        for _ in range(min(count, MAX_AUX_SOCKETS - len(self._aux))):
            sock_id = self._aux_next
            try:
                udp = UdpSocket(
                    socket.AF_INET, host, 0, functools.partial(self._on_aux_batch, sock_id)
                )
            except OSError as exc:
                logger.info("birthday attempt: %d extra sockets only (%s)", len(ids), exc)
                break
            self._aux_next += 1
            self._aux[sock_id] = udp
            ids.append(sock_id)
        return ids

    def close_aux_sockets(self, ids: list[int]) -> None:
        for sock_id in ids:
            udp = self._aux.pop(sock_id, None)
            if udp is not None:
                udp.close()

    @property
    def aux_socket_count(self) -> int:
        return len(self._aux)

    def register_probe_route(self, token: bytes, driver: ConnectionDriver) -> None:
        self._probe_routes[token] = driver

    def unregister_probe_route(self, token: bytes, driver: ConnectionDriver) -> None:
        if self._probe_routes.get(token) is driver:
            del self._probe_routes[token]

    # -- connections -----------------------------------------------------------------------

    def dial(
        self,
        remote: PublicKey,
        paths: list[NetworkPath],
        alpn: bytes,
        *,
        alpns: list[bytes] | None = None,
    ) -> ConnectionDriver:
        """Start a client connection to ``remote`` over every path in ``paths``."""
        quic = new_connection(
            secret_key=self.secret_key,
            is_client=True,
            alpns=[alpn, *(alpns or [])],
            expected_peer=remote,
            settings=self.settings,
            **self._engine_options(),
        )
        target = DialTarget(remote)
        driver = ConnectionDriver(self, quic, target=target, candidates=paths)
        self._add(driver, quic.host_cid)
        quic.connect(target, self.loop.time())
        return driver

    def _engine_options(self) -> dict[str, Any]:
        # Only the native engine knows NAT traversal; aioquic's takes no such option.
        if os.environ.get(ENGINE_ENV, "native") == "aioquic":
            return {}
        if not self.nat_traversal:
            return {"nat_traversal": False}
        return {"hard_nat": True} if self.hard_nat else {}

    def _add(self, driver: ConnectionDriver, cid: bytes) -> None:
        self._drivers.add(driver)
        driver.cids.add(cid)
        self._cids[cid] = driver

    def register_cid(self, cid: bytes, driver: Routable) -> None:
        self._cids[cid] = driver

    def unregister_cid(self, cid: bytes, owner: Routable | None = None) -> None:
        """Stop routing ``cid`` (only if it still belongs to ``owner``, when given)."""
        if owner is None or self._cids.get(cid) is owner:
            self._cids.pop(cid, None)

    def remove_driver(self, driver: ConnectionDriver) -> None:
        self._drivers.discard(driver)
        for cid in driver.cids:
            if self._cids.get(cid) is driver:
                del self._cids[cid]
        driver.cids.clear()

    def incoming_finished(self, driver: ConnectionDriver | None = None) -> None:
        """A server handshake ended (either way): it no longer counts as pending."""
        self._pending_incoming = max(0, self._pending_incoming - 1)
        source = self._pending_source.pop(driver, None) if driver is not None else None
        if source is not None:
            left = self._pending_by_source.get(source, 1) - 1
            if left > 0:
                self._pending_by_source[source] = left
            else:
                self._pending_by_source.pop(source, None)

    # -- inbound ---------------------------------------------------------------------------

    def _on_udp_batch(self, batch: Batch) -> None:
        # One clock read and one path object per sender for the whole batch (a GRO batch is
        # mostly one peer): this runs per datagram at full speed.
        now = self.loop.time()
        paths: dict[tuple[str, int], IpPath] = {}
        for data, addr in batch:
            path = paths.get(addr)
            if path is None:
                path = paths[addr] = IpPath(addr[0], addr[1])
            self.receive(data, path, now)
        self._flush_touched()

    def _on_aux_batch(self, sock_id: int, batch: Batch) -> None:
        now = self.loop.time()
        for data, addr in batch:
            self.receive(data, IpPath(addr[0], addr[1], sock_id), now)
        self._flush_touched()

    def on_relay_datagram(self, url: RelayUrl, src: PublicKey, data: bytes) -> None:
        """Relay transport callback: route now, flush once per loop turn (a relay batch)."""
        self.receive(data, RelayPath(url, src))
        if not self._relay_flush_scheduled:
            self._relay_flush_scheduled = True
            self.loop.call_soon(self._flush_relay)

    def _flush_relay(self) -> None:
        self._relay_flush_scheduled = False
        self._flush_touched()

    def _flush_touched(self) -> None:
        touched, self._touched = self._touched, []
        for driver in touched:
            driver.flush()

    def receive(self, data: bytes, path: NetworkPath, now: float | None = None) -> None:
        self.stats.recv_datagrams += 1
        if self.blackholed and path in self.blackholed:
            return
        if not data:
            self.stats.dropped_malformed += 1
            return
        first = data[0]
        if first == 0:  # never QUIC (fixed bit clear): maybe a birthday probe
            self._on_probe(data, path, now)
            return
        if first & 0x80:
            if len(data) < 7:
                self.stats.dropped_malformed += 1
                return
            dcid_len = data[5]
            dcid = data[6 : 6 + dcid_len]
        else:
            dcid = data[1 : 1 + CID_LENGTH]
        driver: Routable | None = self._cids.get(dcid)
        if driver is None:
            if first & 0x80:
                driver = self._maybe_accept(data, path)
            if driver is None:
                self.stats.dropped_unknown_cid += 1
                return
        if now is None:
            now = self.loop.time()
        try:
            driver.receive(data, path, now)
        except Exception:  # a malformed packet must never take the socket down
            logger.exception("error processing datagram from %s", path)
            self.stats.dropped_malformed += 1
            return
        if not driver.closed and driver not in self._touched:
            self._touched.append(driver)

    def _on_probe(self, data: bytes, path: NetworkPath, now: float | None) -> None:
        probe = decode_probe(data)
        if probe is None or not isinstance(path, IpPath):
            self.stats.dropped_malformed += 1
            return
        driver = self._probe_routes.get(probe.token)
        if driver is None or driver.closed:
            self.stats.dropped_unknown_probe += 1
            return
        driver.on_hard_nat_probe(path, probe, self.loop.time() if now is None else now)
        if driver not in self._touched:
            self._touched.append(driver)

    def _maybe_accept(self, data: bytes, path: NetworkPath) -> ConnectionDriver | None:
        if not self.accepting or len(data) < MIN_INITIAL_SIZE:
            return None
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except (BufferReadError, ValueError):
            self.stats.dropped_malformed += 1
            return None
        if header.version != QUIC_V1 or header.packet_type != QuicPacketType.INITIAL:
            return None
        alpns = self._alpns()
        if not alpns:
            return None
        source = _source_of(path)
        if (
            self._pending_incoming >= MAX_PENDING_INCOMING
            or self._pending_by_source.get(source, 0) >= MAX_PENDING_PER_SOURCE
        ):
            self.stats.dropped_incoming += 1
            return None
        if not initial_decrypts(data, header.destination_cid, cid_length=CID_LENGTH):
            # Junk with a valid header: no connection state for it (it would hold a slot).
            self.stats.dropped_malformed += 1
            return None
        options = self._engine_options()
        odcid = header.destination_cid
        if isinstance(path, IpPath) and os.environ.get(ENGINE_ENV, "native") == "native":
            # Under pressure a UDP client first proves it receives at its address (Retry).
            # Relayed clients need not: the relay authenticated them.
            now = self.loop.time()
            address = f"{path.host}|{path.port}".encode()
            if header.token:
                original = self._retry_tokens.validate(header.token, address, now)
                if original is None:
                    self.stats.dropped_incoming += 1
                    return None
                odcid = original
                options["retry_source_connection_id"] = header.destination_cid
            elif self._pending_incoming >= self.retry_threshold:
                self.stats.retries_sent += 1
                token = self._retry_tokens.issue(address, odcid, now)
                self.send(
                    build_retry(
                        version=header.version,
                        client_scid=header.source_cid,
                        retry_scid=os.urandom(CID_LENGTH),
                        original_dcid=odcid,
                        token=token,
                    ),
                    path,
                )
                return None
        quic = new_connection(
            secret_key=self.secret_key,
            is_client=False,
            alpns=alpns,
            original_destination_connection_id=odcid,
            settings=self.settings,
            **options,
        )
        driver = ConnectionDriver(self, quic, first_path=path)
        self._add(driver, quic.host_cid)
        # Duplicate Initials (same DCID over another transport) must reach this connection.
        driver.cids.add(header.destination_cid)
        self._cids[header.destination_cid] = driver
        self._pending_incoming += 1
        self._pending_by_source[source] = self._pending_by_source.get(source, 0) + 1
        self._pending_source[driver] = source
        self._on_incoming(driver)
        return driver

    # -- outbound --------------------------------------------------------------------------

    def _udp_for(self, path: IpPath) -> UdpSocket | None:
        if path.local:
            return self._aux.get(path.local)
        return self.udp6 if path.is_ipv6 else self.udp4

    def send_many(self, datagrams: list[bytes], path: NetworkPath) -> None:
        """Send datagrams to one path: GSO batches over UDP, batch frames over a relay."""
        if self.blackholed and path in self.blackholed:
            return
        if isinstance(path, IpPath):
            udp = self._udp_for(path)
            if udp is not None:
                udp.send_many(datagrams, path.sockaddr)
        else:
            for data in datagrams:
                self.send(data, path)

    def send(self, data: bytes, path: NetworkPath) -> None:
        if self.blackholed and path in self.blackholed:
            return
        if isinstance(path, IpPath):
            udp = self._udp_for(path)
            if udp is not None:
                udp.send(data, path.sockaddr)
        elif self.relay is not None:
            self.relay.send(path.url, path.endpoint_id, data)


def _source_of(path: NetworkPath) -> object:
    """What the per-source handshake cap counts by: the IP address, or the relayed peer."""
    if isinstance(path, IpPath):
        return path.host
    return path
