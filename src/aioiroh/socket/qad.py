"""QAD client: ask a relay's QUIC Address Discovery service which address it sees us at.

The probe runs over the magic socket's **own** UDP socket (wire doc §5.9), so the answer is the
NAT mapping our peers' packets will meet. The probe's connection registers its connection IDs
with the socket's demultiplexer like any other connection and is gone again after one answer
(closed with application code 1 "finished") or after :data:`QAD_PROBE_TIMEOUT`.

TLS: the relay's certificate is **not** verified (see
:func:`~aioiroh.quic.qad_connection.qad_configuration`); the reported address is only a
candidate for holepunching, and a wrong one costs at most a few unanswered probes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Final

from aioquic.quic import events

from ..errors import IrohError
from ..quic.qad_connection import QAD_FINISHED_CODE, QadConnection, qad_configuration
from .paths import IpPath, NetworkPath

if TYPE_CHECKING:
    from .socket import MagicSocket

__all__ = ["QAD_PROBE_TIMEOUT", "QadError", "QadProbe", "probe_qad"]

logger = logging.getLogger(__name__)

QAD_PROBE_TIMEOUT: Final = 5.0
"""Longest a probe waits for the relay's report."""


class QadError(IrohError):
    """A QAD probe failed (no answer, refused, or no socket of the relay's address family)."""


class QadProbe:
    """One QAD client connection routed through a :class:`MagicSocket` (see module doc)."""

    def __init__(self, sock: MagicSocket, relay: IpPath, server_name: str) -> None:
        self.socket = sock
        self.relay = relay
        self.loop = asyncio.get_running_loop()
        self.quic = QadConnection(
            configuration=qad_configuration(is_client=True, server_name=server_name)
        )
        self.cids: set[bytes] = set()
        self.closed = False
        self.result: asyncio.Future[tuple[str, int]] = self.loop.create_future()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._register(self.quic.host_cid)
        self.quic.connect(self.relay.sockaddr, self.loop.time())
        self.flush()

    def _register(self, cid: bytes) -> None:
        self.cids.add(cid)
        self.socket.register_cid(cid, self)

    # -- the socket's routing interface ------------------------------------------------------

    def receive(self, data: bytes, path: NetworkPath, now: float) -> None:
        if not isinstance(path, IpPath):
            return
        self.quic.receive_datagram(data, path.sockaddr, now)

    def flush(self) -> None:
        if self.closed:
            return
        quic = self.quic
        while (event := quic.next_event()) is not None:
            if isinstance(event, events.ConnectionIdIssued):
                self._register(event.connection_id)
            elif isinstance(event, events.ConnectionTerminated):
                self._fail(
                    f"relay closed QAD connection: {event.reason_phrase or event.error_code}"
                )
        if quic.observed is not None and not self.result.done():
            ip, port = quic.observed
            self.result.set_result((str(ip), port))
            quic.close(QAD_FINISHED_CODE, reason_phrase="finished")
        for data, addr in quic.datagrams_to_send(self.loop.time()):
            self.socket.send(data, IpPath(str(addr[0]), int(addr[1])))
        if self.result.done():
            # Our close is out; nothing more is needed from this connection.
            self.abort()
            return
        at = quic.get_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        self.quic.handle_timer(self.loop.time())
        self.flush()

    def _fail(self, why: str) -> None:
        if not self.result.done():
            self.result.set_exception(QadError(why))

    def abort(self) -> None:
        """Forget the connection (no more packets are sent or routed to it)."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for cid in self.cids:
            self.socket.unregister_cid(cid, self)
        self.cids.clear()
        self._fail("QAD probe aborted")
        # Retrieve the exception so an unawaited failure never logs "never retrieved".
        if self.result.done() and not self.result.cancelled():
            self.result.exception()


async def _resolve(host: str, port: int, families: set[int]) -> IpPath:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        if family not in families:
            raise QadError(f"no UDP socket for the relay's address family ({host})")
        return IpPath(str(ip), port)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise QadError(f"cannot resolve relay host {host!r}: {exc}") from exc
    for info in infos:
        if info[0] in families:
            return IpPath(str(info[4][0]), port)
    raise QadError(f"relay host {host!r} has no address of a bound socket's family")


async def probe_qad(
    sock: MagicSocket, host: str, port: int, *, timeout: float = QAD_PROBE_TIMEOUT
) -> tuple[str, int]:
    """Our address as the QAD service at ``host:port`` sees it, over ``sock``'s UDP socket.

    Raises :class:`QadError` when there is no answer within ``timeout`` or it fails.
    """
    families: set[int] = set()
    if sock.udp4 is not None:
        families.add(socket.AF_INET)
    if sock.udp6 is not None:
        families.add(socket.AF_INET6)
    relay = await _resolve(host.strip("[]"), port, families)
    probe = QadProbe(sock, relay, host.strip("[]"))
    try:
        probe.start()
        async with asyncio.timeout(timeout):
            return await asyncio.shield(probe.result)
    except TimeoutError:
        raise QadError(f"no QAD answer from {host}:{port} within {timeout:g}s") from None
    finally:
        probe.abort()
