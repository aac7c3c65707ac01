"""UDP and TCP DNS listeners; they hand query bytes to a handler and send back its reply."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Final, cast

import dns.exception
import dns.flags
import dns.message

from .rate_limit import ResponseRateLimiter

__all__ = ["DnsListeners", "QueryHandler"]

log = logging.getLogger(__name__)

QueryHandler = Callable[[bytes, bool], Awaitable[bytes | None]]
"""``handler(query, udp) -> reply or None (drop)``."""

# A DNS message over TCP carries a 2-byte length; anything larger cannot exist.
_MAX_TCP_MESSAGE: Final = 65535


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: DnsListeners) -> None:
        self._owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._owner._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS UDP socket error: %r", exc)


class _SniffProtocol(asyncio.Protocol):
    """Waits for the first byte, then hands the connection to the DNS or HTTP protocol."""

    def __init__(self, owner: DnsListeners) -> None:
        self._owner = owner
        self._transport: asyncio.Transport | None = None
        self._inner: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        # A client that connects and never sends a byte is closed after the idle timeout.
        self._timer = asyncio.get_running_loop().call_later(self._owner._idle, self._silent_timeout)

    def _silent_timeout(self) -> None:
        if self._inner is None and self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            assert self._transport is not None
            self._timer.cancel()
            factory = self._owner._http_factory
            # A DNS length prefix below 0x2000 starts with a control byte; HTTP never does.
            if factory is not None and data[0] >= 0x20:
                inner = factory()
            else:
                inner = self._owner._dns_tcp_protocol()
            assert isinstance(inner, asyncio.Protocol)
            self._inner = inner
            self._transport.set_protocol(inner)
            inner.connection_made(self._transport)
        self._inner.data_received(data)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        if self._inner is not None:
            self._inner.connection_lost(exc)


class DnsListeners:
    """One UDP and one TCP listener on the same port.

    Bounds: at most ``max_inflight_udp`` UDP queries are answered at once (more are dropped
    and counted via ``on_drop``), at most ``max_tcp_connections`` TCP connections are open,
    and a TCP connection idle for ``tcp_idle_timeout`` seconds is closed. A TCP connection
    also lives at most ``tcp_max_lifetime`` seconds in total, a reply that cannot be written
    within ``tcp_write_timeout`` closes it, and one source IP holds at most ``max_tcp_per_ip``
    of them. With ``rrl``, UDP replies are rate limited per source prefix.
    """

    def __init__(
        self,
        handler: QueryHandler,
        *,
        max_inflight_udp: int,
        max_tcp_connections: int,
        tcp_idle_timeout: float,
        tcp_max_lifetime: float = 30.0,
        tcp_write_timeout: float = 5.0,
        max_tcp_per_ip: int = 16,
        rrl: ResponseRateLimiter | None = None,
        on_drop: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._handler = handler
        self._max_inflight_udp = max_inflight_udp
        self._max_tcp = max_tcp_connections
        self._idle = tcp_idle_timeout
        self._lifetime = tcp_max_lifetime
        self._write_timeout = tcp_write_timeout
        self._max_tcp_per_ip = max_tcp_per_ip
        self._tcp_per_ip: dict[str, int] = {}
        self._rrl = rrl
        self._on_drop = on_drop
        self._udp: _UdpProtocol | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tcp_conns: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None
        self._http_factory: Callable[[], asyncio.BaseProtocol] | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        http_factory: Callable[[], asyncio.BaseProtocol] | None = None,
    ) -> tuple[str, int]:
        """Bind UDP first (port 0 picks one), then TCP on the same port; return the address.

        With ``http_factory`` the TCP port also serves HTTP: the first byte of a connection
        tells them apart (DNS over TCP starts with a length byte, HTTP with an ASCII method).
        """
        loop = asyncio.get_running_loop()
        self._http_factory = http_factory
        # With port 0 the free UDP port might be taken for TCP; retry a few times.
        for attempt in range(8):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port)
            )
            bound = transport.get_extra_info("sockname")
            try:
                self._tcp = await loop.create_server(lambda: _SniffProtocol(self), host, bound[1])
            except OSError:
                transport.close()
                if port != 0 or attempt == 7:
                    raise
                continue
            self._udp = protocol
            self.address = (bound[0], bound[1])
            return self.address
        raise OSError("could not bind DNS listeners")  # pragma: no cover

    def _dns_tcp_protocol(self) -> asyncio.Protocol:
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(), self._serve_tcp)

    async def stop(self) -> None:
        """Close both listeners and cancel queries in flight."""
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        if self._tcp is not None:
            self._tcp.close()
        pending = list(self._tasks) + list(self._tcp_conns)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None
        self._udp = None

    # -- UDP --------------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self._tasks) >= self._max_inflight_udp:
            self._on_drop("udp_overload")
            return
        if self._rrl is not None:
            verdict = self._rrl.check(addr[0], time.monotonic())
            if verdict != "answer":
                self._on_drop(f"rrl_{verdict}")
                udp = self._udp
                reply = _truncated(data) if verdict == "slip" else None
                if reply is not None and udp is not None and udp.transport is not None:
                    udp.transport.sendto(reply, addr)
                return
        task = asyncio.get_running_loop().create_task(self._answer_udp(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = await self._handler(data, True)
        except Exception:
            log.exception("DNS handler failed")
            self._on_drop("handler_error")
            return
        udp = self._udp
        if reply is not None and udp is not None and udp.transport is not None:
            udp.transport.sendto(reply, addr)

    # -- TCP --------------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        if len(self._tcp_conns) >= self._max_tcp:
            self._on_drop("tcp_overload")
            writer.transport.abort()
            return
        if self._tcp_per_ip.get(ip, 0) >= self._max_tcp_per_ip:
            self._on_drop("tcp_per_ip")
            writer.transport.abort()
            return
        self._tcp_conns.add(task)
        self._tcp_per_ip[ip] = self._tcp_per_ip.get(ip, 0) + 1
        timed_out = False
        try:
            # The idle timer restarts per query; the lifetime bounds a client that keeps
            # sending slowly, the write timeout one that never reads its answers.
            async with asyncio.timeout(self._lifetime):
                while True:
                    header = await asyncio.wait_for(reader.readexactly(2), self._idle)
                    length = int.from_bytes(header, "big")
                    query = await asyncio.wait_for(reader.readexactly(length), self._idle)
                    reply = await self._handler(query, False)
                    if reply is None:
                        continue
                    if len(reply) > _MAX_TCP_MESSAGE:
                        self._on_drop("too_large")
                        continue
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await asyncio.wait_for(writer.drain(), self._write_timeout)
        except TimeoutError:
            timed_out = True
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_conns.discard(task)
            left = self._tcp_per_ip.pop(ip, 1) - 1
            if left > 0:
                self._tcp_per_ip[ip] = left
            if timed_out:
                self._on_drop("tcp_timeout")
                _reset(writer)
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


def _truncated(query: bytes) -> bytes | None:
    """An empty reply with TC set (the RRL "slip"): a real resolver retries over TCP."""
    try:
        request = dns.message.from_wire(query)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        return None
    if request.flags & dns.flags.QR:
        return None
    response = dns.message.make_response(request)
    response.flags |= dns.flags.TC
    return response.to_wire()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a RST: replies queued for a peer that does not read are not
    kept by the kernel either (a plain close leaves an orphan retrying into a zero window)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
