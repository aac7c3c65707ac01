"""Relay server drivers: one :class:`ClientConn` per WebSocket, and the :class:`RelayHub` between.

A connection's reader runs in the aiohttp handler task; its writer is a task owned by the
connection that drains a bounded queue (full → drop and count). Keep-alive is not a task per
client: the server calls :meth:`RelayHub.tick` periodically, which pings quiet clients and
aborts those whose ping went unanswered or whose write has been stuck too long.

Buffers (:func:`limit_buffers`): whatever sits in a buffer below us is delivered in order and
cannot be dropped, so the buffers we do not control are kept small and the backlog stays
where it is bounded.

* Toward a client (send side): ``TCP_NOTSENT_LOWAT`` caps the unsent bytes in the kernel (Linux
  would otherwise grow the send buffer to megabytes for a slow reader), and the asyncio write
  buffer pauses the writer early, so a slow reader's backlog waits in the per-client queue,
  which is bounded in frames and in bytes (full → dropped). A reader that stops altogether
  blocks the writer and is disconnected after ``write_timeout``.
* The queue is bounded in time too: toward a client reading at 1 MB/s a full 1 MiB queue is a
  second of delay. Each datagram frame carries a deadline (``max_queue_delay`` after it was
  queued) and is dropped, not sent, if the writer dequeues it later than that; QUIC reads the
  loss as congestion and backs off. Control frames carry no deadline (``math.inf``).
* From a rate-limited client (receive side): the limiter stops reading, and the backlog would
  sit in the kernel receive buffer, which autotunes to megabytes — seconds of delay at the
  limited rate, invisible to the client. With a rate limit configured, each relay socket gets
  a fixed receive buffer of about :data:`RECEIVE_WINDOW_TIME` of the rate (a fixed size is not
  autotuned), and while the limiter holds the reader back the socket is not read at all (else
  aiohttp would go on filling its message queue, up to 512 KiB), so TCP flow control pushes
  the backlog back to the client, whose own queue bounds and drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
from collections import deque
from typing import Final

from aiohttp import WSCloseCode, WSMsgType, web

from ..base.key import EndpointId
from ..relay.protocol.frames import (
    MAX_FRAME_SIZE,
    ClientAuth,
    ClientToRelayDatagrams,
    EndpointGone,
    Ping,
    Pong,
    RelayProtocolError,
    Restarting,
    Status,
    StatusCode,
    decode_client_msg,
    encode_relay_msg,
    relay_datagrams_frame,
)
from ..relay.protocol.ping import PingTracker
from ..relay.protocol.version import ProtocolVersion
from ..util.rate_limit import TokenBucket
from .clients import Action, ClientRegistry, SendEndpointGone, SendStatus
from .config import ServerConfig
from .metrics import RelayMetrics

__all__ = ["ClientConn", "RelayHub", "limit_buffers", "receive_buffer_for"]

log = logging.getLogger(__name__)

# How long a close handshake may take before the socket is just aborted.
CLOSE_TIMEOUT: Final = 1.0
# How long a graceful shutdown waits for a client's queue (with Restarting) to drain.
SHUTDOWN_FLUSH_TIMEOUT: Final = 1.0
# A whole WebSocket message must fit the bucket, or it could never be let through.
_MIN_BURST: Final = MAX_FRAME_SIZE
# Unsent bytes the kernel may hold for a client socket (TCP_NOTSENT_LOWAT). Bytes in flight
# are not counted, so this costs no throughput once it covers the time to refill the socket.
SEND_LOWAT: Final = 32 * 1024
# asyncio write buffer above which the writer waits (aiohttp checks it every this many bytes).
SEND_BUFFER_HIGH: Final = 32 * 1024
# Under a rate limit: the receive buffer holds about this much time at the limited rate. It
# is also the window, so it must cover the client's RTT for the client to reach the rate.
RECEIVE_WINDOW_TIME: Final = 0.1
RECEIVE_BUFFER_MIN: Final = 16 * 1024
RECEIVE_BUFFER_MAX: Final = 4 * 1024 * 1024


def receive_buffer_for(bytes_per_second: int) -> int:
    """The ``SO_RCVBUF`` asked for on a client socket under a ``bytes_per_second`` limit."""
    size = int(bytes_per_second * RECEIVE_WINDOW_TIME)
    return min(max(size, RECEIVE_BUFFER_MIN), RECEIVE_BUFFER_MAX)


def limit_buffers(ws: web.WebSocketResponse, request: web.Request, config: ServerConfig) -> None:
    """Shrink the buffers under a prepared relay WebSocket (see the module docstring).

    Best effort: options the platform or aiohttp does not offer are skipped.
    """
    transport = request.transport
    if transport is None:
        return
    with contextlib.suppress(AttributeError, NotImplementedError, ValueError):
        transport.set_write_buffer_limits(high=SEND_BUFFER_HIGH)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        lowat = getattr(socket, "TCP_NOTSENT_LOWAT", None)
        if lowat is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, lowat, SEND_LOWAT)
        if config.rate_limit is not None:
            size = receive_buffer_for(config.rate_limit.bytes_per_second)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class ClientConn:
    """One authenticated client connection."""

    def __init__(
        self,
        hub: RelayHub,
        conn_id: int,
        endpoint_id: EndpointId,
        version: ProtocolVersion,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        now: float,
    ) -> None:
        self.hub = hub
        self.conn_id = conn_id
        self.endpoint_id = endpoint_id
        self.version = version
        self.ws = ws
        self._request = request
        self._raw_id = endpoint_id.to_bytes()
        config = hub.config
        self._queue: deque[tuple[bytes, float]] = deque()
        """Encoded frames with the loop time after which they are dropped instead of sent."""
        self._queue_max = config.send_queue
        self.queue_bytes_max = config.send_queue_bytes
        """Bytes of frames queued for this client before new ones are dropped."""
        self.queued_bytes = 0
        """Bytes of frames in the queue now."""
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flushed.set()
        self.ping = PingTracker(config.ping_timeout)
        self.last_recv = now
        self._next_ping_after = hub.ping_delay()
        self.write_started: float | None = None
        self.closing = False
        self.close_reason = ""
        self._rate_limited_sent = False
        self._bucket: TokenBucket | None = None
        if config.rate_limit is not None:
            burst = max(config.rate_limit.max_burst_bytes or 0, _MIN_BURST)
            self._bucket = TokenBucket(config.rate_limit.bytes_per_second, burst, now=now)

    def __repr__(self) -> str:
        return f"ClientConn({self.conn_id}, {self.endpoint_id.fmt_short()}, {self.version})"

    # --- sending ---------------------------------------------------------------------------

    def send_frame(self, frame: bytes, expires: float = math.inf) -> bool:
        """Queue an encoded frame; False (and counted) if the queue is full or closing.

        A frame still queued at loop time ``expires`` is dropped (and counted) by the writer;
        only datagram frames get a finite one, control frames must always be delivered.
        """
        if (
            self.closing
            or len(self._queue) >= self._queue_max
            or (self.queued_bytes + len(frame) > self.queue_bytes_max and self._queue)
        ):
            self.hub.metrics.dropped_queue_full += 1
            return False
        self._queue.append((frame, expires))
        self.queued_bytes += len(frame)
        self._flushed.clear()
        self._wake.set()
        return True

    def send_msg(self, msg: Status | EndpointGone | Ping | Pong | Restarting) -> bool:
        """Encode ``msg`` for this client's version and queue it (Status is skipped on v1)."""
        if isinstance(msg, Status) and self.version == ProtocolVersion.V1:
            return False
        return self.send_frame(encode_relay_msg(msg, self.version))

    async def _writer(self) -> None:
        ws = self.ws
        queue = self._queue
        metrics = self.hub.metrics
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                self._flushed.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            frame, expires = queue.popleft()
            self.queued_bytes -= len(frame)
            now = loop.time()
            if now > expires:
                metrics.dropped_queue_delay += 1
                continue
            self.write_started = now
            await ws.send_bytes(frame)
            self.write_started = None
            metrics.frames_sent += 1
            metrics.bytes_sent += len(frame)

    # --- receiving -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes; always unregisters and stops the writer."""
        writer = asyncio.create_task(self._writer(), name=f"relay-writer-{self.conn_id}")
        try:
            await self._reader()
        except (ConnectionError, RuntimeError) as exc:
            # aiohttp raises these when the transport dies under a send.
            self.close_reason = self.close_reason or f"connection lost: {exc}"
        finally:
            writer.cancel()
            try:
                await writer
            except (asyncio.CancelledError, ConnectionError, RuntimeError):
                pass
            if not self.ws.closed:
                await self._close(WSCloseCode.GOING_AWAY, self.close_reason or "bye")
            self.hub.remove(self)

    async def _reader(self) -> None:
        ws = self.ws
        hub = self.hub
        metrics = hub.metrics
        loop = asyncio.get_running_loop()
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.BINARY:
                data: bytes = msg.data
                now = loop.time()
                self.last_recv = now
                metrics.frames_recv += 1
                metrics.bytes_recv += len(data)
                try:
                    frame = decode_client_msg(data, self.version)
                except RelayProtocolError as exc:
                    metrics.protocol_errors += 1
                    await self._close(WSCloseCode.PROTOCOL_ERROR, f"protocol error: {exc}")
                    return
                if isinstance(frame, ClientToRelayDatagrams):
                    hub.forward(self, frame, now)
                elif isinstance(frame, Ping):
                    metrics.pings_recv += 1
                    self.send_msg(Pong(frame.data))
                elif isinstance(frame, Pong):
                    self.ping.pong_received(frame.data, now)
                elif isinstance(frame, ClientAuth):
                    metrics.protocol_errors += 1
                    await self._close(WSCloseCode.PROTOCOL_ERROR, "unexpected ClientAuth")
                    return
                if self._bucket is not None:
                    delay = self._bucket.take(len(data), now)
                    if delay > 0:
                        metrics.rate_limited += 1
                        if not self._rate_limited_sent:
                            self._rate_limited_sent = True
                            self.send_msg(Status(StatusCode.RATE_LIMITED))
                        # Back-pressure: stop reading; TCP pushes back on the client.
                        await self._pause_reading(delay)
            elif msg.type is WSMsgType.TEXT:
                continue  # iroh ignores text messages
            elif msg.type is WSMsgType.ERROR:
                error = ws.exception()
                code = getattr(error, "code", None)
                if code == WSCloseCode.MESSAGE_TOO_BIG:
                    metrics.oversized_messages += 1
                    self.close_reason = "message too big"
                else:
                    self.close_reason = self.close_reason or f"websocket error: {error}"
                return
            else:  # CLOSE, CLOSING, CLOSED
                return

    async def _pause_reading(self, delay: float) -> None:
        """Leave the socket unread for ``delay`` seconds (the rate limiter's verdict).

        aiohttp would otherwise keep reading into its message queue while we wait. The
        transport is paused directly: aiohttp's own pause (its queue is full) is tracked on
        the protocol and must survive ours, so we resume only what we paused.
        """
        transport = self._request.transport
        if transport is None or not transport.is_reading():
            await asyncio.sleep(delay)
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(delay)
        finally:
            aiohttp_paused = getattr(self._request.protocol, "_reading_paused", False)
            if not transport.is_closing() and not aiohttp_paused:
                transport.resume_reading()

    # --- closing ---------------------------------------------------------------------------

    async def _close(self, code: int, reason: str) -> None:
        self.closing = True
        self.close_reason = self.close_reason or reason
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.ws.close(code=code, message=reason.encode()[:120])
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort(reason)

    def abort(self, reason: str) -> None:
        """Drop the TCP connection now (dead or stuck peers); the reader then finishes."""
        self.closing = True
        self.close_reason = self.close_reason or reason
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def shutdown(self, restarting: Restarting | None) -> None:
        """Graceful close: send ``restarting`` (if any), let the queue drain briefly, close."""
        if restarting is not None and not self.closing:
            self.send_msg(restarting)
        self.closing = True
        try:
            async with asyncio.timeout(SHUTDOWN_FLUSH_TIMEOUT):
                await self._flushed.wait()
        except TimeoutError:
            pass
        await self._close(WSCloseCode.GOING_AWAY, "relay shutting down")


class RelayHub:
    """Routes datagrams between :class:`ClientConn` objects and applies registry actions."""

    def __init__(self, config: ServerConfig, metrics: RelayMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.registry = ClientRegistry(max_sent_to=config.max_sent_to)
        self.conns: dict[int, ClientConn] = {}
        #: Handshakes holding a reserved ``max_clients`` slot.
        self.handshaking = 0
        self._next_id = 0
        self._rng = random.Random()
        self._max_queue_delay = (
            math.inf if config.max_queue_delay is None else config.max_queue_delay
        )

    def next_conn_id(self) -> int:
        """A fresh connection id."""
        self._next_id += 1
        return self._next_id

    def ping_delay(self) -> float:
        """Silence before the next server ping: the interval plus random jitter."""
        low, high = self.config.ping_jitter
        return self.config.ping_interval + self._rng.uniform(low, high)

    def try_reserve(self) -> bool:
        """Reserve a client slot for a handshake about to start; False when the relay is full.

        Check and reservation happen without an await in between, so concurrent upgrades
        cannot all pass the check (``release`` gives the slot back when the handshake ends).
        """
        if self.handshaking + self.registry.endpoint_count >= self.config.max_clients:
            return False
        self.handshaking += 1
        return True

    def release(self) -> None:
        """The handshake that held a reserved slot ended (registered or failed)."""
        self.handshaking -= 1

    def add(self, conn: ClientConn) -> None:
        """Register an authenticated connection."""
        self.conns[conn.conn_id] = conn
        self.metrics.accepts += 1
        self.metrics.clients = len(self.conns)
        actions = self.registry.register(conn.conn_id, conn.endpoint_id)
        if actions:
            self.metrics.same_id_replaced += 1
        self._apply(actions)
        inactive = self.registry.inactive_conns(conn.endpoint_id)
        for old_id in inactive[: max(0, len(inactive) - self.config.max_inactive_per_endpoint)]:
            old = self.conns.get(old_id)
            if old is not None:
                self.metrics.same_id_closed += 1
                old.abort("replaced by a newer connection with the same EndpointId")

    def remove(self, conn: ClientConn) -> None:
        """Forget a finished connection and tell whoever needs to know."""
        if self.conns.pop(conn.conn_id, None) is None:
            return
        self.metrics.disconnects += 1
        self.metrics.clients = len(self.conns)
        log.debug("client %r left: %s", conn, conn.close_reason)
        self._apply(self.registry.unregister(conn.conn_id))

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            target = self.conns.get(action.conn_id)
            if target is None:
                continue
            if isinstance(action, SendStatus):
                target.send_msg(Status(action.code))
            elif isinstance(action, SendEndpointGone) and target.send_msg(
                EndpointGone(action.endpoint_id)
            ):
                self.metrics.endpoint_gone_sent += 1

    def forward(self, src: ClientConn, msg: ClientToRelayDatagrams, now: float) -> None:
        """Queue ``msg``'s datagrams to their destination's active connection, or drop.

        ``now`` is the loop time; the frame is dropped if still queued ``max_queue_delay`` later.
        """
        metrics = self.metrics
        dst_id = self.registry.route(src.endpoint_id, msg.dst)
        if dst_id is None:
            metrics.dropped_unknown_dst += 1
            return
        dst = self.conns[dst_id]
        dgrams = msg.datagrams
        frame = relay_datagrams_frame(src._raw_id, dgrams)
        if dst.send_frame(frame, now + self._max_queue_delay):
            metrics.datagram_frames_forwarded += 1
            size = dgrams.segment_size
            n = len(dgrams.contents)
            metrics.datagrams_forwarded += 1 if size is None or n <= size else -(-n // size)

    def tick(self, now: float) -> None:
        """Keep-alive pass: ping quiet clients, abort dead and stuck ones."""
        write_timeout = self.config.write_timeout
        for conn in list(self.conns.values()):
            if conn.closing:
                continue
            if conn.write_started is not None and now - conn.write_started > write_timeout:
                self.metrics.slow_clients += 1
                conn.abort("write timed out")
            elif conn.ping.timed_out(now):
                self.metrics.ping_timeouts += 1
                conn.abort("ping timed out")
            elif not conn.ping.outstanding and now - conn.last_recv >= conn._next_ping_after:
                conn._next_ping_after = self.ping_delay()
                # Measure from now, so a client that answers is not pinged again at once.
                conn.last_recv = now
                if conn.send_msg(conn.ping.new_ping(now, os.urandom(8))):
                    self.metrics.pings_sent += 1

    async def shutdown(self, restarting: Restarting | None) -> None:
        """Close every connection, sending ``restarting`` first if given."""
        conns = list(self.conns.values())
        if conns:
            await asyncio.gather(*(c.shutdown(restarting) for c in conns))
