"""The relay's QUIC Address Discovery service (wire doc §5.9).

A QUIC server on UDP (iroh's default port 7842) with ALPN ``/iroh-qad/0`` and ordinary X.509
TLS. A client that completes the handshake gets one OBSERVED_IPV4/IPV6_ADDRESS report with the
source address we see, and another whenever that address changes; it then closes with
application code 1 "finished". Clients behind NAT learn their public mapping this way, which is
what lets them holepunch.

Robustness: at most :data:`MAX_QAD_CONNECTIONS` connections at once (more Initials are dropped
and counted), at most :data:`MAX_QAD_PER_SOURCE` from one source IP; once a quarter of the
slots are taken, Initials without a token get a stateless Retry, so a slot needs a client that
receives at the address it claims (the address QAD reports). Datagrams that are malformed, too
short to be an Initial, or of another QUIC version are dropped and counted; an exception inside
one connection closes only that one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aioquic.buffer import Buffer, BufferReadError
from aioquic.quic import events
from aioquic.quic.packet import QuicPacketType, encode_quic_retry, pull_quic_header
from aioquic.quic.retry import QuicRetryTokenHandler

from ..quic.qad_connection import CID_LENGTH, QadConnection, qad_configuration
from ..tls.x509 import self_signed_certificate

__all__ = [
    "DEFAULT_QAD_PORT",
    "MAX_QAD_CONNECTIONS",
    "MAX_QAD_PER_SOURCE",
    "QadServer",
    "QadServerStats",
]

logger = logging.getLogger(__name__)

DEFAULT_QAD_PORT: Final = 7842
"""iroh's default QAD port."""
MAX_QAD_CONNECTIONS: Final = 1024
"""Connections served at once; each lives a few round trips, so this is plenty."""
MAX_QAD_PER_SOURCE: Final = 16
"""Connections one source IP may hold at once."""
# RFC 9000 §14.1: a client's first datagram is at least 1200 bytes.
MIN_INITIAL_SIZE: Final = 1200
QUIC_V1: Final = 1
# A client that never finishes (or never closes) is dropped after this long.
CONNECTION_LIFETIME: Final = 40.0


@dataclass(slots=True)
class QadServerStats:
    """Counters of the QAD service."""

    datagrams: int = 0
    connections: int = 0
    reports: int = 0
    dropped_malformed: int = 0
    dropped_unknown: int = 0
    dropped_full: int = 0
    dropped_source: int = 0
    dropped_bad_token: int = 0
    retries: int = 0
    errors: int = 0


class _Conn:
    __slots__ = ("addr", "cids", "deadline", "quic", "source", "timer")

    def __init__(self, quic: QadConnection, addr: Any, deadline: float) -> None:
        self.quic = quic
        self.addr = addr
        self.source = str(addr[0])
        self.cids: set[bytes] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = deadline


class QadServer:
    """QAD service on one UDP socket.

    ::

        qad = QadServer("0.0.0.0", 7842)            # self-signed certificate
        await qad.start(); print(qad.port); ...; await qad.stop()
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_QAD_PORT,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        max_connections: int = MAX_QAD_CONNECTIONS,
        max_per_source: int = MAX_QAD_PER_SOURCE,
        retry_threshold: int | None = -1,
    ) -> None:
        """``retry_threshold``: connections from which on a Retry is required (-1: a quarter
        of ``max_connections``; 0: always; None: never)."""
        self.host = host
        self._want_port = port
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.retry_threshold = max_connections // 4 if retry_threshold == -1 else retry_threshold
        self._retry = QuicRetryTokenHandler()
        self._per_source: dict[str, int] = {}
        self.stats = QadServerStats()
        self._config = qad_configuration(is_client=False)
        if tls_cert is not None and tls_key is not None:
            self._config.load_cert_chain(tls_cert, tls_key)
        else:
            cert, key = self_signed_certificate([host])
            # aioquic loads PEM from files only; the temporary copies live just for the load.
            with tempfile.TemporaryDirectory() as tmp:
                cpath, kpath = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
                cpath.write_bytes(cert)
                kpath.write_bytes(key)
                self._config.load_cert_chain(cpath, kpath)
        self._transport: asyncio.DatagramTransport | None = None
        self._cids: dict[bytes, _Conn] = {}
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set (and replaced by a fresh one) whenever the stats may have changed.
        self._stats_changed = asyncio.Event()

    @property
    def port(self) -> int:
        """The bound UDP port (after :meth:`start`)."""
        if self._transport is None:
            raise RuntimeError("QAD server not started")
        return int(self._transport.get_extra_info("sockname")[1])

    async def start(self) -> None:
        """Bind the UDP socket and start answering."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        server = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                server._datagram_received(data, addr)

            def error_received(self, exc: Exception) -> None:
                logger.debug("QAD socket error: %s", exc)

        transport, _ = await loop.create_datagram_endpoint(
            Protocol, local_addr=(self.host, self._want_port)
        )
        self._transport = transport
        logger.info("QAD service on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and the socket."""
        for conn in list(self._conns):
            self._drop(conn)
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> QadServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    async def wait_stats(self, predicate: Callable[[QadServerStats], bool]) -> QadServerStats:
        """Wait until ``predicate(self.stats)`` is true; returns :attr:`stats`.

        Re-checked after every datagram and connection timer, e.g.
        ``await qad.wait_stats(lambda s: s.reports >= 1)``. Use a timeout around it.
        """
        while not predicate(self.stats):
            await self._stats_changed.wait()
        return self.stats

    def _notify(self) -> None:
        changed, self._stats_changed = self._stats_changed, asyncio.Event()
        changed.set()

    # -- datagrams ---------------------------------------------------------------------------

    def _datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self._handle_datagram(data, addr)
        finally:
            self._notify()

    def _handle_datagram(self, data: bytes, addr: Any) -> None:
        self.stats.datagrams += 1
        if not data:
            self.stats.dropped_malformed += 1
            return
        if data[0] & 0x80:
            if len(data) < 7:
                self.stats.dropped_malformed += 1
                return
            dcid = data[6 : 6 + data[5]]
        else:
            dcid = data[1 : 1 + CID_LENGTH]
        conn = self._cids.get(dcid)
        if conn is None:
            conn = self._accept(data, addr)
            if conn is None:
                return
        assert self._loop is not None
        now = self._loop.time()
        try:
            conn.quic.receive_datagram(data, addr, now)
            conn.addr = addr
            self._process(conn)
        except Exception:  # one bad connection never takes the service down
            logger.exception("QAD connection from %s failed", addr)
            self.stats.errors += 1
            self._drop(conn)

    def _accept(self, data: bytes, addr: Any) -> _Conn | None:
        if not data[0] & 0x80 or len(data) < MIN_INITIAL_SIZE:
            self.stats.dropped_unknown += 1
            return None
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except (BufferReadError, ValueError):
            self.stats.dropped_malformed += 1
            return None
        if header.version != QUIC_V1 or header.packet_type != QuicPacketType.INITIAL:
            self.stats.dropped_unknown += 1
            return None
        source = str(addr[0])
        if self._per_source.get(source, 0) >= self.max_per_source:
            self.stats.dropped_source += 1
            return None
        original_dcid = header.destination_cid
        retry_scid: bytes | None = None
        assert self._loop is not None
        if header.token:
            try:
                original_dcid = self._retry.validate_token(
                    address=addr,
                    destination_cid=header.destination_cid,
                    token=header.token,
                    now=self._loop.time(),
                )
                retry_scid = header.destination_cid
            except ValueError:
                self.stats.dropped_bad_token += 1
                return None
        elif self.retry_threshold is not None and len(self._conns) >= self.retry_threshold:
            self._send_retry(header, addr)
            return None
        if len(self._conns) >= self.max_connections:
            self.stats.dropped_full += 1
            return None
        assert self._loop is not None
        quic = QadConnection(
            configuration=self._config,
            original_destination_connection_id=original_dcid,
            retry_source_connection_id=retry_scid,
        )
        conn = _Conn(quic, addr, self._loop.time() + CONNECTION_LIFETIME)
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._conns.add(conn)
        self.stats.connections += 1
        for cid in (quic.host_cid, header.destination_cid):
            conn.cids.add(cid)
            self._cids[cid] = conn
        return conn

    def _send_retry(self, header: Any, addr: Any) -> None:
        """Stateless Retry: the token binds the client's address; nothing is kept."""
        source_cid = os.urandom(CID_LENGTH)
        assert self._loop is not None
        token = self._retry.create_token(
            address=addr,
            original_destination_connection_id=header.destination_cid,
            retry_source_connection_id=source_cid,
            now=self._loop.time(),
        )
        packet = encode_quic_retry(
            version=header.version,
            source_cid=source_cid,
            destination_cid=header.source_cid,
            original_destination_cid=header.destination_cid,
            retry_token=token,
        )
        self.stats.retries += 1
        if self._transport is not None:
            self._transport.sendto(packet, addr)

    def _process(self, conn: _Conn) -> None:
        quic = conn.quic
        while (event := quic.next_event()) is not None:
            if isinstance(event, events.ConnectionIdIssued):
                conn.cids.add(event.connection_id)
                self._cids[event.connection_id] = conn
            elif isinstance(event, events.ConnectionIdRetired):
                conn.cids.discard(event.connection_id)
                if self._cids.get(event.connection_id) is conn:
                    del self._cids[event.connection_id]
            elif isinstance(event, events.ConnectionTerminated):
                self._drop(conn)
                return
        if quic._handshake_complete and quic.qad is not None:
            before = quic.has_pending_reports
            quic.report_address(str(conn.addr[0]), int(conn.addr[1]))
            if quic.has_pending_reports and not before:
                self.stats.reports += 1
        assert self._loop is not None
        now = self._loop.time()
        transport = self._transport
        for data, addr in quic.datagrams_to_send(now):
            if transport is not None:
                transport.sendto(data, addr)
        self._arm(conn)

    def _arm(self, conn: _Conn) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
        at = conn.quic.get_timer()
        at = conn.deadline if at is None else min(at, conn.deadline)
        assert self._loop is not None
        conn.timer = self._loop.call_at(at, self._on_timer, conn)

    def _on_timer(self, conn: _Conn) -> None:
        conn.timer = None
        if conn not in self._conns:
            return
        assert self._loop is not None
        now = self._loop.time()
        if now >= conn.deadline:
            self._drop(conn)
            return
        try:
            conn.quic.handle_timer(now)
            self._process(conn)
        except Exception:
            logger.exception("QAD connection timer failed")
            self.stats.errors += 1
            self._drop(conn)
        finally:
            self._notify()

    def _drop(self, conn: _Conn) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn in self._conns:
            left = self._per_source.pop(conn.source, 1) - 1
            if left > 0:
                self._per_source[conn.source] = left
        self._conns.discard(conn)
        for cid in conn.cids:
            if self._cids.get(cid) is conn:
                del self._cids[cid]
        conn.cids.clear()
