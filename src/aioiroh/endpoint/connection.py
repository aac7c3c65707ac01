"""``Connection``: an authenticated QUIC connection to one remote endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aioquic.quic import events

from ..base.key import PublicKey
from ..errors import (
    AlpnMismatchError,
    AuthenticationError,
    ConnectError,
    ConnectionClosedByPeer,
    ConnectionLost,
    DatagramTooLarge,
    LocallyClosed,
    StreamError,
    StreamReset,
    StreamStopped,
    TimedOut,
)
from ..socket.driver import MAX_PATH_EVENT_QUEUE
from ..socket.hard_nat import HardNatStats
from ..socket.path_manager import PathEvent
from ..socket.paths import IpPath, RelayPath
from .aioquic_view import AioquicView
from .streams import (
    HIGH_WATER,
    WRITE_CHUNK,
    RecvStream,
    SendStream,
    is_client_initiated,
    is_unidirectional,
)

if TYPE_CHECKING:
    from ..quic.engine import QuicEngine
    from ..socket.driver import ConnectionDriver

__all__ = ["Connection", "PathEvent", "PathInfo"]

logger = logging.getLogger(__name__)

# TLS alerts carried in CRYPTO_ERROR (0x100 + alert), RFC 9001 §4.8.
_CRYPTO_ERROR: Final = 0x100
_ALERT_BAD_CERTIFICATE: Final = 42
_ALERT_CERTIFICATE_REQUIRED: Final = 116
_ALERT_NO_APPLICATION_PROTOCOL: Final = 120
# Bound on received-but-unread datagrams; older ones are dropped (datagrams are unreliable).
MAX_QUEUED_DATAGRAMS: Final = 1024
# Per-packet overhead we reserve below the UDP payload size for a DATAGRAM frame.
_DATAGRAM_OVERHEAD: Final = 40


@dataclass(frozen=True, slots=True)
class PathInfo:
    """A snapshot of one network path of a connection (like Rust's ``PathSnapshot``)."""

    id: int
    remote_addr: str
    is_ip: bool
    is_relay: bool
    is_selected: bool
    rtt: float | None
    datagrams_sent: int
    datagrams_recv: int
    bytes_sent: int
    bytes_recv: int


class Connection:
    """A QUIC connection to an authenticated remote endpoint.

    Obtained from :meth:`Endpoint.connect` or :meth:`Endpoint.accept`. Use it as an async
    context manager to close it on exit.
    """

    def __init__(self, driver: ConnectionDriver) -> None:
        self._driver = driver
        self._quic: QuicEngine = driver.quic
        self._loop = driver.loop
        self._is_client = driver.quic.is_client
        self._recv: dict[int, RecvStream] = {}
        self._send: dict[int, SendStream] = {}
        self._incoming_bi: deque[tuple[SendStream, RecvStream]] = deque()
        self._incoming_uni: deque[RecvStream] = deque()
        self._datagrams: deque[bytes] = deque(maxlen=MAX_QUEUED_DATAGRAMS)
        self._waiters: list[asyncio.Future[None]] = []
        self._writable: list[asyncio.Future[None]] = []
        self._finishing: set[SendStream] = set()
        self.handshake: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[ConnectionLost] = self._loop.create_future()
        self._error: ConnectionLost | None = None
        self._local_close = False
        self.datagrams_dropped = 0
        """Received datagrams dropped unread because the queue was full (oldest go first)."""
        self._protocol_hook: Callable[[events.QuicEvent], None] | None = None
        self._on_established: Callable[[], None] | None = None
        """Called synchronously when the handshake completes (the endpoint's accept queue)."""
        driver.on_event = self._on_event
        driver.on_flushed = self._on_flushed

    async def path_events(self) -> AsyncIterator[PathEvent]:
        """Path changes as they happen: ``opened``, ``selected`` and ``closed`` events.

        Like Rust's ``watch_path_events``: starts with the current state (each open path,
        then the selected one) and ends when the connection closes. At most
        ``MAX_PATH_EVENT_QUEUE`` unread events are kept; older ones are dropped.
        """
        queue: deque[PathEvent] = deque(maxlen=MAX_PATH_EVENT_QUEUE)
        wake: asyncio.Event = asyncio.Event()

        def listener(event: PathEvent) -> None:
            queue.append(event)
            wake.set()

        driver = self._driver
        snapshots = getattr(self._quic, "path_snapshots", None)
        manager = driver.manager
        # Until the path manager starts (one loop turn after the handshake) its first poll
        # reports the current paths itself; a snapshot now would report them twice.
        if (
            snapshots is not None
            and driver.handshake_complete
            and (manager is None or manager.started)
        ):
            live = [s for s in snapshots() if s.validated and not s.abandoned]
            queue.extend(PathEvent("opened", s.path_id, s.remote) for s in live)
            queue.extend(PathEvent("selected", s.path_id, s.remote) for s in live if s.carries_data)
        driver.path_event_listeners.append(listener)
        try:
            while True:
                while queue:
                    yield queue.popleft()
                if self._closed.done():
                    return
                wake.clear()
                waiter: asyncio.Future[Any] = asyncio.ensure_future(wake.wait())
                both: list[asyncio.Future[Any]] = [waiter, self._closed]
                try:
                    await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        finally:
            driver.path_event_listeners.remove(listener)

    # -- identity --------------------------------------------------------------------------

    @property
    def remote_id(self) -> PublicKey:
        """The remote endpoint's id (its authenticated Ed25519 key)."""
        peer = self._quic.peer_id
        if peer is None:
            raise ConnectError("handshake not complete")
        return peer

    @property
    def alpn(self) -> bytes:
        """The negotiated application protocol."""
        return self._quic.alpn or b""

    @property
    def is_client(self) -> bool:
        """True on the side that dialed."""
        return self._is_client

    @property
    def rtt(self) -> float | None:
        """Smoothed round-trip time in seconds (None before the first sample)."""
        return self._quic.smoothed_rtt

    def hard_nat_attempt(self) -> HardNatStats | None:
        """What the birthday hard-NAT attempt did on this connection, None if none ran
        (``Endpoint.bind(hard_nat=True)`` on both sides, and no direct path 2 s in)."""
        attempt = self._driver.hard_nat
        return None if attempt is None else attempt.stats()

    def paths(self) -> list[PathInfo]:
        """The network paths of this connection; the selected one is marked.

        With the multipath engine these are its open paths (abandoned ones are left out);
        otherwise every network path the connection has used.
        """
        driver = self._driver
        snapshots = getattr(self._quic, "path_snapshots", None)
        if snapshots is not None and driver.handshake_complete:
            return [
                PathInfo(
                    id=s.path_id,
                    remote_addr=str(s.remote),
                    is_ip=isinstance(s.remote, IpPath),
                    is_relay=isinstance(s.remote, RelayPath),
                    is_selected=s.carries_data,
                    rtt=s.rtt,
                    datagrams_sent=s.datagrams_sent,
                    datagrams_recv=s.datagrams_recv,
                    bytes_sent=s.bytes_sent,
                    bytes_recv=s.bytes_recv,
                )
                for s in snapshots()
                if not s.abandoned and s.validated
            ]
        selected = driver.selected
        out = []
        known = list(driver.stats)
        for i, path in enumerate(known):
            st = driver.stats[path]
            out.append(
                PathInfo(
                    id=i,
                    remote_addr=str(path),
                    is_ip=isinstance(path, IpPath),
                    is_relay=isinstance(path, RelayPath),
                    is_selected=path == selected,
                    rtt=self.rtt if path == selected else None,
                    datagrams_sent=st.datagrams_sent,
                    datagrams_recv=st.datagrams_recv,
                    bytes_sent=st.bytes_sent,
                    bytes_recv=st.bytes_recv,
                )
            )
        return out

    # -- streams ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._quic.is_closing:
            raise LocallyClosed("connection is closing")

    async def _open_stream(self, uni: bool) -> int:
        # The engine owns stream ids; it hands one out only within the peer's MAX_STREAMS.
        while True:
            self._check_open()
            sid = self._quic.open_stream(uni)
            if sid is not None:
                return sid
            await self._wait_writable()

    async def open_bi(self) -> tuple[SendStream, RecvStream]:
        """Open a bidirectional stream (the peer sees it once data is sent).

        Waits while the peer's stream limit (MAX_STREAMS) allows no more streams.
        """
        sid = await self._open_stream(False)
        send, recv = SendStream(self, sid), RecvStream(self, sid)
        self._send[sid] = send
        self._recv[sid] = recv
        return send, recv

    async def open_uni(self) -> SendStream:
        """Open a unidirectional stream; waits for the peer's stream credit like :meth:`open_bi`."""
        sid = await self._open_stream(True)
        send = SendStream(self, sid)
        self._send[sid] = send
        return send

    async def accept_bi(self) -> tuple[SendStream, RecvStream]:
        """Wait for the peer to open a bidirectional stream."""
        while not self._incoming_bi:
            await self._wait_event()
        send, recv = self._incoming_bi.popleft()
        recv._accept()
        return send, recv

    async def accept_uni(self) -> RecvStream:
        """Wait for the peer to open a unidirectional stream."""
        while not self._incoming_uni:
            await self._wait_event()
        recv = self._incoming_uni.popleft()
        recv._accept()
        return recv

    # -- datagrams -------------------------------------------------------------------------

    @property
    def max_datagram_size(self) -> int:
        """Largest datagram payload that fits the current path now."""
        settings = getattr(self._quic, "settings", None)
        size = getattr(settings, "max_datagram_size", 1200)
        return int(size) - _DATAGRAM_OVERHEAD

    def send_datagram(self, data: bytes) -> None:
        """Send an unreliable datagram (RFC 9221)."""
        self._check_open()
        if len(data) > self.max_datagram_size:
            raise DatagramTooLarge(
                f"datagram of {len(data)} bytes exceeds {self.max_datagram_size}"
            )
        try:
            self._quic.send_datagram_frame(bytes(data))
        except ValueError as exc:  # the peer accepts smaller datagrams than we send
            raise DatagramTooLarge(str(exc)) from None
        self._driver.schedule_flush()

    async def read_datagram(self) -> bytes:
        """Wait for the next datagram from the peer."""
        while not self._datagrams:
            await self._wait_event()
        return self._datagrams.popleft()

    # -- closing ---------------------------------------------------------------------------

    def close(self, error_code: int = 0, reason: bytes | str = b"") -> None:
        """Close immediately with an application error code; the peer sees code and reason."""
        if self._error is not None or self._local_close:
            return
        self._local_close = True
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else reason
        self._quic.close(error_code=error_code, reason_phrase=text)
        self._driver.schedule_flush()
        # Like Rust, a local close is final at once; the close frame goes out on the next flush.
        self._finish(LocallyClosed("connection closed locally", code=error_code, reason=text))

    async def closed(self) -> ConnectionLost:
        """Wait until the connection is closed; returns the reason as an exception object."""
        return await asyncio.shield(self._closed)

    def close_reason(self) -> ConnectionLost | None:
        """Why the connection closed (an aioiroh error), or None while it is open."""
        return self._error

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close(0, b"")

    # -- plumbing used by streams ----------------------------------------------------------

    def _send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._check_open()
        self._quic.send_stream_data(stream_id, data, end_stream)
        self._driver.schedule_flush()

    def _send_room(self, stream_id: int) -> int:
        """Bytes a writer may queue now: the peer's window left, capped by our send buffer."""
        quic = self._quic
        buffered = quic.send_buffer_size(stream_id)
        return min(quic.send_capacity(stream_id), HIGH_WATER + WRITE_CHUNK - buffered)

    def _consumed(self, stream_id: int, n: int) -> None:
        if self._error is None:
            self._quic.stream_consumed(stream_id, n, self._loop.time())
            self._driver.schedule_flush()

    def _recv_done(self, recv: RecvStream) -> None:
        """The application is done with a receive side: drop it and release its credit."""
        if self._recv.get(recv.id) is recv:
            del self._recv[recv.id]
        if self._error is None:
            self._quic.stream_released(recv.id)
            self._driver.schedule_flush()

    def _send_done(self, send: SendStream) -> None:
        if self._send.get(send.id) is send:
            del self._send[send.id]
        self._finishing.discard(send)

    def _reset_stream(self, stream_id: int, code: int) -> None:
        if self._error is None:
            try:
                self._quic.reset_stream(stream_id, code)
            except (StreamError, ValueError):  # ValueError: the aioquic engine
                return
            self._driver.schedule_flush()

    def _stop_stream(self, stream_id: int, code: int) -> None:
        if self._error is None:
            try:
                self._quic.stop_stream(stream_id, code)
            except (StreamError, ValueError):
                return  # nothing received yet: aioquic has no stream to stop
            self._driver.schedule_flush()

    async def _wait_writable(self) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._writable.append(fut)
        await fut

    async def _wait_event(self) -> None:
        self._check_closed_for_wait()
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        await fut
        self._check_closed_for_wait()

    def _check_closed_for_wait(self) -> None:
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _watch_acked(self, send: SendStream) -> None:
        """Resolve ``send.stopped()`` with None once all its data is acknowledged."""
        self._finishing.add(send)

    def _check_acked(self) -> None:
        done = [s for s in self._finishing if self._quic.send_buffer_size(s.id) == 0]
        for send in done:
            self._finishing.discard(send)
            send._acked()

    def _on_flushed(self) -> None:
        if self._finishing:
            self._check_acked()
        if not self.handshake.done() and self._quic.is_closing:
            # A failed handshake (e.g. the peer's key was wrong) is final as soon as the close
            # is sent; don't make connect() wait out the closing period.
            event = self._quic.close_event
            if event is not None:
                self.handshake.set_exception(self._handshake_error(event))
                self.handshake.exception()
        if self._writable:
            writable, self._writable = self._writable, []
            for fut in writable:
                if not fut.done():
                    fut.set_result(None)

    # -- protocol adapters -----------------------------------------------------------------

    def attach_protocol(self, on_event: Callable[[events.QuicEvent], None]) -> QuicEngine:
        """Hand stream and datagram events to a protocol layer that drives the engine itself.

        For layers built on aioquic's sans-I/O API (its HTTP/3 ``H3Connection``): after this
        call, stream and datagram events go to ``on_event`` instead of the stream objects of
        this connection, and the returned engine is used to send. Call :meth:`transmit` after
        sending. Connection-level events (handshake, close) are still handled here too.
        """
        self._protocol_hook = on_event
        return AioquicView(self._quic, self)

    def transmit(self) -> None:
        """Send whatever the engine has queued (coalesced to once per loop turn)."""
        self._driver.schedule_flush()

    # -- events from the engine ------------------------------------------------------------

    def _on_event(self, event: events.QuicEvent) -> None:
        hook = self._protocol_hook
        if hook is not None:
            if not isinstance(event, (events.HandshakeCompleted, events.ConnectionTerminated)):
                hook(event)
                self._credit_protocol(event)
                return
            hook(event)
        if isinstance(event, events.StreamDataReceived):
            self._on_stream_data(event)
        elif isinstance(event, events.DatagramFrameReceived):
            if len(self._datagrams) == MAX_QUEUED_DATAGRAMS:
                self.datagrams_dropped += 1  # the deque's maxlen drops the oldest
            self._datagrams.append(event.data)
            self._wake()
        elif isinstance(event, events.StreamReset):
            recv = self._recv.get(event.stream_id)
            if recv is None:
                recv = self._incoming(event.stream_id)
            if recv is not None:
                recv._fail(StreamReset(event.error_code))
        elif isinstance(event, events.StopSendingReceived):
            send = self._send.get(event.stream_id)
            if send is not None:
                send._fail(StreamStopped(event.error_code))
                self._send_done(send)
                self._on_flushed()
        elif isinstance(event, events.HandshakeCompleted):
            if not self.handshake.done():
                self.handshake.set_result(None)
                if self._on_established is not None:
                    self._on_established()
        elif isinstance(event, events.ConnectionTerminated):
            self._on_terminated(event)

    def _credit_protocol(self, event: events.QuicEvent) -> None:
        """A protocol layer (HTTP/3) takes stream data as it arrives: credit it at once."""
        if isinstance(event, events.StreamDataReceived):
            if event.data:
                self._quic.stream_consumed(event.stream_id, len(event.data), self._loop.time())
            if event.end_stream:
                self._quic.stream_released(event.stream_id)
        elif isinstance(event, events.StreamReset):
            self._quic.stream_released(event.stream_id)

    def _incoming(self, sid: int) -> RecvStream | None:
        """A new stream the peer opened, queued for accept; None for a local stream."""
        if is_client_initiated(sid) == self._is_client:
            return None  # a local stream we no longer track
        # The engine reports a peer stream only until it is released, so this one is new;
        # it holds the peer's stream credit until accepted and ended, which bounds the queues.
        recv = RecvStream(self, sid, accepted=False)
        self._recv[sid] = recv
        if is_unidirectional(sid):
            self._incoming_uni.append(recv)
        else:
            send = SendStream(self, sid)
            self._send[sid] = send
            self._incoming_bi.append((send, recv))
        self._wake()
        return recv

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        recv = self._recv.get(event.stream_id)
        if recv is None:
            recv = self._incoming(event.stream_id)
            if recv is None:
                return
        recv._feed(event.data, event.end_stream)

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        if self._error is not None:
            return
        code, reason = event.error_code, event.reason_phrase
        err: ConnectionLost
        if self._local_close:
            err = LocallyClosed("connection closed locally", code=code, reason=reason)
        elif reason == "Idle timeout" and event.frame_type == 0:
            err = TimedOut("connection timed out (idle)", code=code, reason=reason)
        else:
            kind = "application" if event.frame_type is None else "transport"
            err = ConnectionClosedByPeer(
                f"connection closed by peer ({kind} code {code:#x}: {reason!r})",
                code=code,
                reason=reason,
            )
            err.is_application = event.frame_type is None  # type: ignore[attr-defined]
        if not self.handshake.done():
            self.handshake.set_exception(self._handshake_error(event))
            self.handshake.exception()  # mark retrieved; connect() reports it
        self._finish(err)

    def _finish(self, err: ConnectionLost) -> None:
        """Record the end of the connection and wake everything waiting on it."""
        if self._error is not None:
            return
        self._error = err
        if not self.handshake.done():
            self.handshake.set_exception(err)
            self.handshake.exception()
        if not self._closed.done():
            self._closed.set_result(err)
        for recv in self._recv.values():
            recv._fail(err)
        for send in self._send.values():
            send._fail(err)
        self._wake()
        self._on_flushed()

    def _handshake_error(self, event: events.ConnectionTerminated) -> ConnectError:
        code = event.error_code
        failure = self._quic.auth_failure
        if failure is not None:
            return AuthenticationError(failure)
        if code == _CRYPTO_ERROR + _ALERT_NO_APPLICATION_PROTOCOL:
            return AlpnMismatchError(f"peer does not accept the ALPN: {event.reason_phrase!r}")
        if code in (
            _CRYPTO_ERROR + _ALERT_BAD_CERTIFICATE,
            _CRYPTO_ERROR + _ALERT_CERTIFICATE_REQUIRED,
        ):
            return AuthenticationError(f"peer rejected our identity: {event.reason_phrase!r}")
        if event.reason_phrase == "Idle timeout":
            return ConnectError("handshake timed out")
        return ConnectError(f"connection failed (code {code:#x}: {event.reason_phrase!r})")

    def __repr__(self) -> str:
        peer = self._quic.peer_id
        who = peer.fmt_short() if peer is not None else "?"
        return f"Connection(remote={who}, alpn={self.alpn!r}, client={self._is_client})"
