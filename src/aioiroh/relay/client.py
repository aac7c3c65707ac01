"""Relay client: one authenticated WebSocket to one iroh relay (wire doc §5.1-5.6).

:meth:`RelayClient.connect` upgrades ``GET /relay`` offering ``iroh-relay-v2, iroh-relay-v1``,
insists that the ``101`` names one of them, and runs the challenge handshake (a relay that
already trusts us may confirm straight away). Afterwards the client

* sends datagrams with :meth:`RelayClient.send` (frames 4/5, one frame per binary WebSocket
  message); :meth:`RelayClient.wait_writable` tells a sender when the connection can take
  more (see "Send buffers" below),
* yields everything else the relay sends through :meth:`RelayClient.recv` / ``async for``,
  except Ping, which it answers itself, and Pong, which feeds its keep-alive,
* pings the relay right after connecting and again whenever nothing was received for
  ``ping_interval`` (15 s); no Pong within ``ping_timeout`` (5 s, shortened to 3x the last
  RTT) fails the connection, like iroh's relay actor does.

Send buffers: a relay connection is a TCP stream, so whatever sits in the buffers below us
is delivered in order and cannot be dropped. Left alone, Linux grows a socket's send buffer
to megabytes, which on a slow link is seconds of queue in front of every packet, QUIC's ACKs
and path probes included. We keep those buffers small (``TCP_NOTSENT_LOWAT`` caps the unsent
bytes in the kernel; bytes in flight are still governed by TCP's window, so throughput over
long fat paths is kept; the asyncio write buffer gets a low high-water mark), so the backlog
stays with the caller, who can drop or reorder it.

A failed connection is never repaired here: :meth:`recv` and :meth:`send` raise
:class:`~aioiroh.errors.RelayError` and the owner reconnects (see
``aioiroh.socket.transports.relay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

import aiohttp

from ..base.key import EndpointId, SecretKey
from ..base.relay_url import RelayUrl
from ..errors import RelayAuthError, RelayError
from .protocol.frames import (
    MAX_FRAME_SIZE,
    MAX_PACKET_SIZE,
    ClientToRelayDatagrams,
    Datagrams,
    Ping,
    Pong,
    RelayProtocolError,
    RelayToClientMsg,
    ServerChallenge,
    ServerConfirmsAuth,
    ServerDeniesAuth,
    decode_relay_msg,
    encode_client_msg,
)
from .protocol.handshake import sign_challenge
from .protocol.ping import DEFAULT_PING_TIMEOUT, PingTracker
from .protocol.version import SUBPROTOCOLS, ProtocolVersion

__all__ = [
    "CONNECT_TIMEOUT",
    "PING_INTERVAL",
    "RECV_QUEUE_MAX",
    "RelayClient",
]

logger = logging.getLogger(__name__)

# Dial + upgrade + handshake must finish within this (iroh relay actor CONNECT_TIMEOUT, §4.6).
CONNECT_TIMEOUT: Final = 10.0
# Keep-alive period; half QUIC's 30 s idle timeout so a dead relay is noticed in time (§5.6).
PING_INTERVAL: Final = 15.0
# Received messages waiting for recv(); beyond this they are dropped and counted, so a slow
# consumer cannot stop us answering the relay's pings.
RECV_QUEUE_MAX: Final = 512
# Explicit ping() calls that may be outstanding at once.
MAX_PENDING_PINGS: Final = 16
# Unsent bytes the kernel may hold for the relay socket (TCP_NOTSENT_LOWAT). Bytes in flight
# are not counted, so this costs no throughput once it covers the time to refill the socket.
SEND_LOWAT: Final = 32 * 1024
# asyncio write buffer above which the connection is not writable (low mark: a quarter).
SEND_BUFFER_HIGH: Final = 32 * 1024
# How long closing waits for the relay's WebSocket close frame.
_WS_CLOSE_TIMEOUT: Final = 1.0
_AUTH_HEADER: Final = "Authorization"


class RelayClient:
    """An authenticated connection to one relay; create it with :meth:`connect`."""

    def __init__(
        self,
        *,
        url: RelayUrl,
        public_key: EndpointId,
        version: ProtocolVersion,
        ws: aiohttp.ClientWebSocketResponse,
        session: aiohttp.ClientSession,
        owns_session: bool,
        ping_interval: float,
        ping_timeout: float,
        recv_queue_max: int,
    ) -> None:
        """Internal: use :meth:`connect`."""
        self.url = url
        """The relay this client is connected to."""
        self.public_key = public_key
        """Our own endpoint id, as authenticated to the relay."""
        self.version = version
        """The protocol version the relay chose."""
        self.dropped_recv = 0
        """Received messages dropped because the receive queue was full."""
        self.bytes_sent = 0
        """Bytes of frames sent (WebSocket framing not counted)."""
        self.bytes_received = 0
        """Bytes of frames received (WebSocket framing not counted)."""
        self._ws = ws
        self._session = session
        self._owns_session = owns_session
        self._ping_interval = ping_interval
        self._tracker = PingTracker(ping_timeout)
        self._recv_queue: deque[RelayToClientMsg] = deque()
        self._recv_queue_max = recv_queue_max
        self._wakeup = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._ping_waiters: dict[bytes, asyncio.Future[float]] = {}
        self._loop = asyncio.get_running_loop()
        self._last_recv = self._loop.time()
        self._last_rtt: float | None = None
        # Wakes the keep-alive task when its ping was answered before the deadline.
        self._pong_event = asyncio.Event()
        self._error: RelayError | None = None
        self._closed_locally = False
        self._task: asyncio.Task[None] | None = None
        # aiohttp's protocol for the WebSocket, for its pause/resume (drain) state.
        self._protocol = _limit_send_buffers(ws)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: RelayUrl | str,
        secret_key: SecretKey,
        *,
        protocols: Iterable[ProtocolVersion | str] = SUBPROTOCOLS,
        auth_token: str | None = None,
        timeout: float = CONNECT_TIMEOUT,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        recv_queue_max: int = RECV_QUEUE_MAX,
        session: aiohttp.ClientSession | None = None,
    ) -> RelayClient:
        """Connect and authenticate to the relay at ``url``.

        ``protocols`` are offered in order (default v2, v1). ``auth_token`` is sent as
        ``Authorization: Bearer``. ``session`` lets several clients share one aiohttp
        session (it is not closed with the client). Raises :class:`RelayAuthError` if the
        relay denies us and :class:`RelayError` for any other failure, including ``timeout``.
        """
        relay_url = url if isinstance(url, RelayUrl) else RelayUrl(url)
        offered = [str(ProtocolVersion(p)) for p in protocols]
        if not offered:
            raise ValueError("at least one protocol version must be offered")
        headers = {_AUTH_HEADER: f"Bearer {auth_token}"} if auth_token is not None else {}
        owns_session = session is None
        if session is None:
            session = aiohttp.ClientSession()
        ws: aiohttp.ClientWebSocketResponse | None = None
        try:
            async with asyncio.timeout(timeout):
                try:
                    ws = await session.ws_connect(
                        relay_url.websocket_url(),
                        protocols=offered,
                        headers=headers,
                        autoping=True,
                        autoclose=True,
                        heartbeat=None,
                        compress=0,
                        max_msg_size=MAX_FRAME_SIZE,
                        timeout=aiohttp.ClientWSTimeout(
                            ws_receive=None, ws_close=_WS_CLOSE_TIMEOUT
                        ),
                    )
                except aiohttp.WSServerHandshakeError as exc:
                    raise RelayError(
                        f"relay {relay_url} refused the upgrade: {exc.status} {exc.message}"
                    ) from exc
                except (aiohttp.ClientError, OSError) as exc:
                    raise RelayError(f"cannot reach relay {relay_url}: {exc}") from exc
                version = ProtocolVersion.from_subprotocol(ws.protocol or "")
                if version is None or version.value not in offered:
                    raise RelayError(
                        f"relay {relay_url} answered without a valid Sec-WebSocket-Protocol "
                        f"(got {ws.protocol!r}, offered {', '.join(offered)})"
                    )
                await _authenticate(ws, secret_key, version, relay_url)
        except BaseException as exc:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
            if owns_session:
                await session.close()
            if isinstance(exc, TimeoutError):
                raise RelayError(f"connecting to relay {relay_url} timed out") from exc
            raise
        client = cls(
            url=relay_url,
            public_key=secret_key.public(),
            version=version,
            ws=ws,
            session=session,
            owns_session=owns_session,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            recv_queue_max=recv_queue_max,
        )
        client._task = asyncio.create_task(client._run(), name=f"relay-client {relay_url}")
        logger.debug("connected to relay %s (%s)", relay_url, version)
        return client

    # --- state --------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True until the connection fails or is closed."""
        return self._error is None and not self._closed_locally

    @property
    def error(self) -> RelayError | None:
        """Why the connection ended, if it failed (None while up or after a local close)."""
        return None if self._closed_locally else self._error

    @property
    def rtt(self) -> float | None:
        """The last measured ping round trip in seconds, None before the first Pong."""
        return self._last_rtt

    # --- sending ------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """False while the send buffers below us are full (see :meth:`wait_writable`)."""
        protocol = self._protocol
        return protocol is None or not protocol.writing_paused

    async def wait_writable(self) -> None:
        """Return once the connection can take more frames without queueing them deeply.

        Raises :class:`RelayError` if the connection failed or was closed meanwhile. Senders
        that keep their own queue call this before taking the next batch from it.
        """
        self._check_open()
        protocol = self._protocol
        if protocol is None or not protocol.writing_paused:
            return
        # aiohttp's drain future is shared with its own writers: cancelling our wait must not
        # cancel it, hence the shield; the callback keeps a late error from being reported.
        drain = asyncio.ensure_future(protocol._drain_helper())
        drain.add_done_callback(_consume_result)
        try:
            await asyncio.shield(drain)
        except (aiohttp.ClientError, OSError) as exc:
            error = RelayError(f"relay {self.url} connection lost: {exc}")
            self._fail(error)
            raise error from exc
        self._check_open()

    async def send(self, dst: EndpointId, datagrams: Datagrams) -> None:
        """Send one datagram or a batch (frame 4 or 5) to ``dst`` through the relay."""
        await self.send_frames([encode_client_msg(ClientToRelayDatagrams(dst, datagrams))])

    async def send_datagram(
        self, dst: EndpointId, data: bytes, *, ecn: int = 0, segment_size: int | None = None
    ) -> None:
        """Send ``data`` to ``dst``; with ``segment_size`` it is a batch of equal datagrams."""
        if segment_size is not None and segment_size >= len(data):
            segment_size = None  # one datagram travels as frame 4, like iroh does
        await self.send(dst, Datagrams(ecn, segment_size, bytes(data)))

    async def send_frames(self, frames: list[bytes]) -> None:
        """Send already encoded client frames back to back, one WebSocket message each."""
        for frame in frames:
            if len(frame) - 1 > MAX_PACKET_SIZE:
                raise RelayError(f"relay frame too large: {len(frame)} bytes")
        self._check_open()
        async with self._send_lock:
            try:
                for frame in frames:
                    await self._ws.send_bytes(frame)
                    self.bytes_sent += len(frame)
            except (aiohttp.ClientError, OSError, RuntimeError) as exc:
                # RuntimeError: aiohttp refuses to write to a closing WebSocket.
                error = RelayError(f"sending to relay {self.url} failed: {exc}")
                self._fail(error)
                raise error from exc

    async def ping(self, timeout: float | None = None) -> float:
        """Send a Ping and wait for its Pong; returns the round trip in seconds."""
        self._check_open()
        if len(self._ping_waiters) >= MAX_PENDING_PINGS:
            raise RelayError("too many pings outstanding")
        data = os.urandom(8)
        fut: asyncio.Future[float] = self._loop.create_future()
        self._ping_waiters[data] = fut
        try:
            started = self._loop.time()
            await self.send_frames([encode_client_msg(Ping(data))])
            async with asyncio.timeout(timeout):
                await fut
            self._last_rtt = self._loop.time() - started
            return self._last_rtt
        except TimeoutError:
            raise RelayError(f"no pong from relay {self.url} within {timeout} s") from None
        finally:
            self._ping_waiters.pop(data, None)

    # --- receiving ----------------------------------------------------------------------------

    async def recv(self) -> RelayToClientMsg:
        """The next message from the relay (never Ping/Pong or handshake messages).

        Raises :class:`RelayError` once the connection has failed or was closed and
        everything received before that has been returned.
        """
        while True:
            if self._recv_queue:
                return self._recv_queue.popleft()
            if self._closed_locally:
                raise RelayError("relay client closed")
            if self._error is not None:
                raise self._error
            self._wakeup.clear()
            await self._wakeup.wait()

    async def __aiter__(self) -> AsyncIterator[RelayToClientMsg]:
        """Iterate received messages; ends after :meth:`close`, raises if the connection fails."""
        while True:
            try:
                yield await self.recv()
            except RelayError:
                if self._closed_locally:
                    return
                raise

    # --- closing ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the WebSocket and stop the background task. Idempotent."""
        if self._closed_locally:
            return
        self._closed_locally = True
        self._wakeup.set()
        try:
            if self._task is not None:
                self._task.cancel()
                # asyncio.wait, not await: a cancelled close() must still raise CancelledError.
                await asyncio.wait({self._task})
        finally:
            await self._shutdown()

    async def __aenter__(self) -> RelayClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "closed"
        return f"<RelayClient {self.url} {self.public_key.fmt_short()} {self.version} {state}>"

    # --- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed_locally:
            raise RelayError("relay client closed")
        if self._error is not None:
            raise self._error

    def _fail(self, error: RelayError) -> None:
        if self._error is None:
            self._error = error
            logger.debug("relay %s connection failed: %s", self.url, error)
        self._wakeup.set()
        for fut in self._ping_waiters.values():
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # mark retrieved: nobody may be waiting any more
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _shutdown(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()
        if self._owns_session:
            await self._session.close()

    async def _run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read_loop(), name=f"relay-read {self.url}")
                tg.create_task(self._keep_alive(), name=f"relay-keepalive {self.url}")
        except* RelayError as group:
            self._fail(group.exceptions[0])  # type: ignore[arg-type]
        except* Exception as group:
            logger.exception("relay client %s crashed", self.url, exc_info=group)
            self._fail(RelayError(f"relay client failed: {group.exceptions[0]!r}"))
        finally:
            if self._error is None and not self._closed_locally:
                self._fail(RelayError("relay connection ended"))
            self._wakeup.set()
            # Close the socket now so the relay sees us go, even if nobody calls close().
            with contextlib.suppress(Exception):
                await asyncio.shield(self._ws.close())

    async def _read_loop(self) -> None:
        ws = self._ws
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.BINARY:
                data: bytes = msg.data
                self._last_recv = self._loop.time()
                self.bytes_received += len(data)
                try:
                    decoded = decode_relay_msg(data, self.version)
                except RelayProtocolError as exc:
                    # Like iroh: a frame we cannot understand ends the connection.
                    raise RelayError(f"relay {self.url} sent a bad frame: {exc}") from exc
                await self._dispatch(decoded)
            elif msg.type is aiohttp.WSMsgType.TEXT:
                continue  # text messages carry nothing in this protocol
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                raise RelayError(f"relay {self.url} closed the connection ({msg.data})")
            elif msg.type is aiohttp.WSMsgType.CLOSED:
                raise RelayError(f"relay {self.url} connection closed")
            elif msg.type is aiohttp.WSMsgType.ERROR:
                raise RelayError(f"relay {self.url} connection error: {msg.data}")

    async def _dispatch(self, msg: RelayToClientMsg) -> None:
        if isinstance(msg, Ping):
            await self.send_frames([encode_client_msg(Pong(msg.data))])
        elif isinstance(msg, Pong):
            if self._tracker.pong_received(msg.data, self._loop.time()):
                self._last_rtt = self._tracker.rtt
                self._pong_event.set()
            fut = self._ping_waiters.get(msg.data)
            if fut is not None and not fut.done():
                fut.set_result(self._loop.time())
        elif isinstance(msg, ServerChallenge | ServerConfirmsAuth | ServerDeniesAuth):
            raise RelayError(f"relay {self.url} sent a handshake frame after the handshake")
        elif len(self._recv_queue) >= self._recv_queue_max:
            self.dropped_recv += 1
        else:
            self._recv_queue.append(msg)
            self._wakeup.set()

    async def _keep_alive(self) -> None:
        tracker = self._tracker
        first = True
        while True:
            now = self._loop.time()
            deadline = tracker.deadline
            if deadline is not None:
                if tracker.timed_out(now):
                    raise RelayError(f"relay {self.url} did not answer a ping in time")
                self._pong_event.clear()
                timer = self._loop.call_later(deadline - now, self._pong_event.set)
                try:
                    await self._pong_event.wait()
                finally:
                    timer.cancel()
                continue
            due = self._last_recv + self._ping_interval
            if first or now >= due:
                first = False
                ping = tracker.new_ping(now, os.urandom(8))
                try:
                    # A relay that stopped reading blocks the write; that counts as no pong.
                    async with asyncio.timeout_at(tracker.deadline):
                        await self.send_frames([encode_client_msg(ping)])
                except TimeoutError:
                    raise RelayError(f"relay {self.url} did not take a ping in time") from None
                continue
            await asyncio.sleep(due - now)


def _consume_result(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _limit_send_buffers(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """Shrink the send buffers under ``ws``; returns aiohttp's protocol, or None if unknown."""
    writer = getattr(ws, "_writer", None)
    transport = getattr(writer, "transport", None)
    protocol = getattr(writer, "protocol", None)
    if transport is None or not hasattr(protocol, "_drain_helper"):
        return None  # an aiohttp we do not know: no flow control, as before
    with contextlib.suppress(AttributeError, NotImplementedError, ValueError):
        transport.set_write_buffer_limits(high=SEND_BUFFER_HIGH)
    lowat = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    sock = transport.get_extra_info("socket")
    if lowat is not None and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, lowat, SEND_LOWAT)
    return protocol


async def _receive_frame(ws: aiohttp.ClientWebSocketResponse, url: RelayUrl) -> bytes:
    """The next binary message during the handshake (text is skipped)."""
    while True:
        msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if msg.type is aiohttp.WSMsgType.TEXT:
            continue
        raise RelayError(f"relay {url} closed the connection during the handshake")


async def _authenticate(
    ws: aiohttp.ClientWebSocketResponse,
    secret_key: SecretKey,
    version: ProtocolVersion,
    url: RelayUrl,
) -> None:
    """Run the challenge handshake (§5.4); returns once the relay confirmed us."""
    answered = False
    while True:
        try:
            msg = decode_relay_msg(await _receive_frame(ws, url), version)
        except RelayProtocolError as exc:
            raise RelayError(f"relay {url} sent a bad handshake frame: {exc}") from exc
        if isinstance(msg, ServerConfirmsAuth):
            return
        if isinstance(msg, ServerDeniesAuth):
            raise RelayAuthError(f"relay {url} denied us: {msg.reason}")
        if isinstance(msg, ServerChallenge) and not answered:
            answered = True
            await ws.send_bytes(encode_client_msg(sign_challenge(secret_key, msg)))
            continue
        raise RelayError(f"relay {url} sent {type(msg).__name__} during the handshake")
