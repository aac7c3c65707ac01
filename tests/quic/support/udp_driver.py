"""A minimal asyncio UDP driver for one :class:`IrohConnection`, independent of the endpoint.

Used by the native-engine interop tests: one UDP socket, one connection (client dials, or the
server accepts the first Initial), events collected into futures and per-stream buffers.
Datagrams that arrive in one loop turn are processed as one batch before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from aioiroh.base.key import PublicKey, SecretKey
from aioiroh.quic.connection import IrohConnection

from . import app_reads

MAX_BATCH = 64
"""Datagrams processed before the driver sends and yields."""


class _StreamBuf:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.done: asyncio.Future[None] = loop.create_future()


class EngineDriver(asyncio.DatagramProtocol):
    """Owns a UDP socket and drives one native QUIC engine over it."""

    def __init__(
        self,
        *,
        secret_key: SecretKey,
        is_client: bool,
        alpns: list[bytes],
        expected_peer: PublicKey | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.secret_key = secret_key
        self.is_client = is_client
        self.alpns = alpns
        self.expected_peer = expected_peer
        self.engine_kwargs = engine_kwargs or {}
        self.conn: IrohConnection | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        self.terminated: asyncio.Future[events.ConnectionTerminated] = self.loop.create_future()
        self.streams: dict[int, _StreamBuf] = {}
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.resets: dict[int, int] = {}
        self._inbox: deque[tuple[bytes, Any]] = deque()
        self.drop_incoming = False
        """Blackhole: ignore everything the peer sends (for idle-timeout tests)."""
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        if is_client:
            self.conn = self._new(None)

    def _new(self, odcid: bytes | None) -> IrohConnection:
        return IrohConnection(
            secret_key=self.secret_key,
            is_client=self.is_client,
            alpns=self.alpns,
            expected_peer=self.expected_peer,
            original_destination_connection_id=odcid,
            **self.engine_kwargs,
        )

    @classmethod
    async def bind(cls, host: str = "127.0.0.1", **kwargs: Any) -> EngineDriver:
        loop = asyncio.get_running_loop()
        drv = cls(**kwargs)
        await loop.create_datagram_endpoint(lambda: drv, local_addr=(host, 0))
        return drv

    @property
    def local_addr(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    # -- asyncio protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.drop_incoming:
            return
        self._inbox.append((data, addr))
        self.schedule()

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors on loopback: the engine's timers handle loss

    # -- engine plumbing -------------------------------------------------------------------

    def connect(self, addr: tuple[str, int]) -> None:
        assert self.conn is not None
        self.conn.connect(addr, self.loop.time())
        self.schedule()

    def schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        now = self.loop.time()
        n = 0
        while self._inbox and n < MAX_BATCH:
            data, addr = self._inbox.popleft()
            n += 1
            if self.conn is None:
                try:
                    header = pull_quic_header(Buffer(data=data), host_cid_length=8)
                except ValueError:
                    continue
                if header.packet_type != QuicPacketType.INITIAL:
                    continue
                self.conn = self._new(header.destination_cid)
            self.conn.receive_datagram(data, addr, now)
        if self._inbox:
            self.schedule()
        conn = self.conn
        if conn is None:
            return
        if (at := conn.get_timer()) is not None and at <= now:
            conn.handle_timer(now)
        self._events()
        if self.transport is not None and not self.transport.is_closing():
            for data, addr in conn.datagrams_to_send(now):
                self.transport.sendto(data, addr)
        self._events()
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self.conn is not None
        at = self.conn.get_timer()
        if at is not None and not self.conn.is_terminated:
            self._timer = self.loop.call_at(at, self.schedule)

    def _events(self) -> None:
        assert self.conn is not None
        while (ev := self.conn.next_event()) is not None:
            app_reads(self.conn, ev, self.loop.time())
            if isinstance(ev, events.HandshakeCompleted):
                if not self.handshake.done():
                    self.handshake.set_result(None)
            elif isinstance(ev, events.StreamDataReceived):
                buf = self.stream(ev.stream_id)
                buf.chunks.append(ev.data)
                buf.size += len(ev.data)
                if ev.end_stream and not buf.done.done():
                    buf.done.set_result(None)
            elif isinstance(ev, events.StreamReset):
                self.resets[ev.stream_id] = ev.error_code
                buf = self.stream(ev.stream_id)
                if not buf.done.done():
                    buf.done.set_exception(ConnectionResetError(ev.error_code))
            elif isinstance(ev, events.DatagramFrameReceived):
                self.datagrams.put_nowait(ev.data)
            elif isinstance(ev, events.ConnectionTerminated):
                if not self.terminated.done():
                    self.terminated.set_result(ev)
                if not self.handshake.done():
                    self.handshake.set_exception(ConnectionError(ev.reason_phrase))
                    self.handshake.exception()
                for buf in self.streams.values():
                    if not buf.done.done():
                        buf.done.set_exception(ConnectionError(ev.reason_phrase))
                        buf.done.exception()

    # -- test API --------------------------------------------------------------------------

    def stream(self, stream_id: int) -> _StreamBuf:
        buf = self.streams.get(stream_id)
        if buf is None:
            buf = self.streams[stream_id] = _StreamBuf(self.loop)
        return buf

    async def read_stream(self, stream_id: int) -> bytes:
        buf = self.stream(stream_id)
        await buf.done
        return b"".join(buf.chunks)

    def send(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        assert self.conn is not None
        self.conn.send_stream_data(stream_id, data, end_stream)
        self.schedule()

    def send_datagram(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.send_datagram_frame(data)
        self.schedule()

    def close(self, code: int = 0, reason: str = "") -> None:
        assert self.conn is not None
        self.conn.close(code, None, reason)
        self.schedule()

    async def wait_connection(self) -> IrohConnection:
        while self.conn is None:
            await asyncio.sleep(0.01)
        return self.conn

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()
            with contextlib.suppress(Exception):
                await asyncio.sleep(0)
