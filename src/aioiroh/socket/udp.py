"""Batched UDP I/O: one non-blocking socket, drained in batches on readiness.

aioquic's stock driver processes and transmits after every datagram; draining up to
``MAX_BATCH`` datagrams and then transmitting once per batch measured ~1.6x faster
(quic-multipath-on-aioquic.md §4.1). The receive buffer is small on purpose: a 256 KiB
``recvfrom`` costs an mmap per call (ibid. §4.2).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Final

logger = logging.getLogger(__name__)

MAX_BATCH: Final = 64
RECV_SIZE: Final = 4096
SOCKET_BUFFER: Final = 4 * 1024 * 1024

Batch = list[tuple[bytes, tuple[str, int]]]


class UdpSocket:
    """A bound UDP socket feeding ``on_batch`` with lists of ``(data, (host, port))``."""

    def __init__(
        self,
        family: socket.AddressFamily,
        host: str,
        port: int,
        on_batch: Callable[[Batch], None],
    ) -> None:
        self.family = family
        self._on_batch = on_batch
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
                except OSError:
                    pass
            sock.bind((host, port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        addr = sock.getsockname()
        self.local_addr: tuple[str, int] = (addr[0], addr[1])
        self.send_drops = 0
        self.send_errors = 0
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        batch: Batch = []
        recv = self._sock.recvfrom
        for _ in range(MAX_BATCH):
            try:
                data, addr = recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # ICMP errors surface here on Linux (e.g. port unreachable); not fatal.
                logger.debug("udp recv error: %s", exc)
                continue
            batch.append((data, (addr[0], addr[1])))
        if batch:
            self._on_batch(batch)

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send one datagram; a full socket buffer drops it (QUIC retransmits)."""
        if self._closed:
            return
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.send_drops += 1
        except OSError as exc:
            self.send_errors += 1
            logger.debug("udp send to %s failed: %s", addr, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
