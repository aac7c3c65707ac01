"""HTTP/3 sessions over an aioiroh :class:`~aioiroh.endpoint.connection.Connection`.

aioquic's ``H3Connection`` is a sans-I/O layer over a ``QuicConnection``; aioiroh's QUIC engine
is one (a subclass), so the H3 layer drives it directly. :class:`H3Session` is the thin asyncio
driver around it, shared by the httpx transport (client) and the ASGI server: it routes H3
events to per-request :class:`H3Stream` objects, waits for send-buffer room, and turns
connection and stream ends into our exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

from aioquic.h3 import events as h3e
from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.quic import events as qe

from ..errors import ConnectionLost, LocallyClosed, ProtocolError, StreamError, StreamReset

if TYPE_CHECKING:
    from aioquic.quic.connection import QuicConnection

    from ..endpoint.connection import Connection

__all__ = ["ALPN_H3", "H3Session", "H3Stream", "Headers"]

logger = logging.getLogger(__name__)

ALPN_H3: Final = b"iroh+h3"
"""The ALPN of HTTP/3 over iroh (n0's iroh h3 crates and axum example use it)."""

Headers = list[tuple[bytes, bytes]]

# Received body bytes the application has not read yet, per stream. aioquic grows its receive
# window as data arrives (not as it is read), so this is the only bound: a peer that sends
# more than this ahead of the reader gets the stream aborted with H3_EXCESSIVE_LOAD.
MAX_BUFFERED_BODY: Final = 32 * 1024 * 1024
# send_data() hands at most this much to QUIC per DATA frame...
WRITE_CHUNK: Final = 64 * 1024
# ...and waits while more than this is queued but unacknowledged on the stream.
SEND_HIGH_WATER: Final = 1024 * 1024

H3_NO_ERROR: Final = int(ErrorCode.H3_NO_ERROR)
H3_INTERNAL_ERROR: Final = int(ErrorCode.H3_INTERNAL_ERROR)
H3_REQUEST_CANCELLED: Final = int(ErrorCode.H3_REQUEST_CANCELLED)
H3_REQUEST_INCOMPLETE: Final = int(ErrorCode.H3_REQUEST_INCOMPLETE)
H3_EXCESSIVE_LOAD: Final = int(ErrorCode.H3_EXCESSIVE_LOAD)


class H3Stream:
    """One HTTP/3 request stream: the peer's headers and body as they arrive, plus send state.

    On a client it carries the response; on a server, the request.
    """

    def __init__(self, session: H3Session, stream_id: int) -> None:
        self.session = session
        self.stream_id = stream_id
        self.headers: Headers | None = None
        self._headers_ready: asyncio.Future[None] = session.loop.create_future()
        self._chunks: deque[bytes] = deque()
        self.buffered = 0
        self.ended = False
        self.error: BaseException | None = None
        self.send_stopped: int | None = None
        self.send_finished = False
        self._waiters: list[asyncio.Future[None]] = []

    # -- fed by the session ----------------------------------------------------------------

    def _set_headers(self, headers: Headers) -> None:
        self.headers = headers
        if not self._headers_ready.done():
            self._headers_ready.set_result(None)

    def _feed(self, data: bytes) -> None:
        if data and self.error is None and not self.ended:
            self._chunks.append(data)
            self.buffered += len(data)
        self._wake()

    def _end(self) -> None:
        self.ended = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.ended:
            self.error = exc
        if not self._headers_ready.done():
            self._headers_ready.set_exception(exc)
            self._headers_ready.exception()  # retrieved: nobody may be waiting yet
        self._wake()

    def _wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)

    # -- reading ---------------------------------------------------------------------------

    async def wait_headers(self) -> Headers:
        """Wait for the peer's (final) header block."""
        await asyncio.shield(self._headers_ready)
        assert self.headers is not None
        return self.headers

    @property
    def at_eof(self) -> bool:
        """Everything the peer sent has been read and the peer finished the stream."""
        return self.ended and not self._chunks

    async def read(self) -> bytes:
        """The next chunk of body; ``b""`` once the peer finished the stream."""
        await self.wait_until(lambda: bool(self._chunks) or self.ended or self.error is not None)
        if not self._chunks:
            if self.ended:
                return b""
            assert self.error is not None
            raise self.error
        chunk = self._chunks.popleft()
        self.buffered -= len(chunk)
        return chunk

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is checked whenever the stream changes."""
        while not predicate():
            fut = self.session.loop.create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)

    def stop_reading(self, code: int) -> None:
        """Ask the peer to stop sending (STOP_SENDING); unread data is dropped."""
        self.session._stop_reading(self, code)

    # -- sending ---------------------------------------------------------------------------

    def send_headers(self, headers: Headers, *, end_stream: bool = False) -> None:
        """Send a header block (or trailers)."""
        self.session._send_headers(self, headers, end_stream)

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send body bytes, waiting while too much is unacknowledged."""
        await self.session._send_data(self, data, end_stream)

    def abort(self, code: int = H3_REQUEST_CANCELLED) -> None:
        """Reset our side and stop the peer's: neither direction carries more data."""
        self.session._abort(self, code)

    @property
    def done(self) -> bool:
        """Both directions are finished (or failed)."""
        return (self.ended or self.error is not None) and (
            self.send_finished or self.send_stopped is not None or self.error is not None
        )

    def __repr__(self) -> str:
        return f"H3Stream(id={self.stream_id}, ended={self.ended}, error={self.error!r})"


class H3Session:
    """Drives aioquic's ``H3Connection`` over one aioiroh connection.

    ``on_request`` (servers only) is called with each new request stream once its headers
    have arrived. Client streams are created with :meth:`open_stream`.
    """

    def __init__(
        self,
        conn: Connection,
        *,
        on_request: Callable[[H3Stream], None] | None = None,
        max_buffered: int = MAX_BUFFERED_BODY,
    ) -> None:
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self._on_request = on_request
        self._max_buffered = max_buffered
        self._streams: dict[int, H3Stream] = {}
        self._error: ConnectionLost | None = None
        self._closed: asyncio.Future[None] = self.loop.create_future()
        engine = conn.attach_protocol(self._on_quic_event)
        self._engine = engine
        self._quic = cast("QuicConnection", engine)
        self._h3 = H3Connection(self._quic)
        self._replay_early_streams()
        conn._closed.add_done_callback(self._on_conn_closed)
        conn.transmit()

    def _replay_early_streams(self) -> None:
        # Stream data that reached the connection before attach_protocol() (a request sent
        # right behind the handshake) sits in its stream objects: feed it to the H3 layer.
        conn = self.conn
        early = sorted(conn._recv.items())
        conn._recv.clear()
        conn._incoming_bi.clear()
        conn._incoming_uni.clear()
        for sid, recv in early:
            data = b"".join(recv._chunks)
            recv._chunks.clear()
            if data or recv._eof:
                self._on_quic_event(qe.StreamDataReceived(data, recv._eof, sid))

    # -- state -----------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._error is not None or self.conn.close_reason() is not None

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    async def closed(self) -> None:
        """Wait until the connection ends."""
        await asyncio.shield(self._closed)

    def close(self, code: int = H3_NO_ERROR, reason: bytes = b"") -> None:
        self.conn.close(code, reason)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        reason = self.conn.close_reason()
        if reason is not None:
            raise reason

    def _on_conn_closed(self, fut: asyncio.Future[ConnectionLost]) -> None:
        err = fut.result() if not fut.cancelled() else LocallyClosed("connection closed")
        self._error = err
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            stream._fail(err)
        if not self._closed.done():
            self._closed.set_result(None)

    # -- client side -----------------------------------------------------------------------

    def open_stream(self, headers: Headers, *, end_stream: bool) -> H3Stream:
        """Start a request: allocate a stream and send the request headers on it."""
        self._check()
        sid = self._quic.get_next_available_stream_id()
        stream = H3Stream(self, sid)
        self._streams[sid] = stream
        self._send_headers(stream, headers, end_stream)
        return stream

    # -- sending ---------------------------------------------------------------------------

    def _send_check(self, stream: H3Stream) -> None:
        self._check()
        if stream.send_stopped is not None:
            raise StreamError(f"peer stopped the stream (code {stream.send_stopped:#x})")
        if isinstance(stream.error, StreamReset | ProtocolError):
            raise stream.error

    def _send_headers(self, stream: H3Stream, headers: Headers, end_stream: bool) -> None:
        self._send_check(stream)
        self._h3.send_headers(stream.stream_id, headers, end_stream=end_stream)
        if end_stream:
            stream.send_finished = True
            self._maybe_forget(stream)
        self.conn.transmit()

    async def _send_data(self, stream: H3Stream, data: bytes, end_stream: bool) -> None:
        view = memoryview(data)
        sid = stream.stream_id
        start = 0
        while True:
            self._send_check(stream)
            piece = bytes(view[start : start + WRITE_CHUNK])
            start += len(piece)
            last = start >= len(view)
            if piece or (last and end_stream):
                self._h3.send_data(sid, piece, end_stream=end_stream and last)
                self.conn.transmit()
            if last:
                break
            while self._engine.send_buffer_size(sid) > SEND_HIGH_WATER:
                await self.conn._wait_writable()
                self._send_check(stream)
        if end_stream:
            stream.send_finished = True
            self._maybe_forget(stream)
        else:
            while self._engine.send_buffer_size(sid) > SEND_HIGH_WATER:
                await self.conn._wait_writable()
                self._send_check(stream)

    def _abort(self, stream: H3Stream, code: int) -> None:
        sid = stream.stream_id
        if self._error is None and self.conn.close_reason() is None:
            if not stream.send_finished and stream.send_stopped is None:
                try:
                    self._quic.reset_stream(sid, code)
                except Exception:  # aioquic raises if the stream cannot be reset
                    logger.debug("reset of stream %d failed", sid, exc_info=True)
            if not stream.ended and stream.error is None:
                try:
                    self._quic.stop_stream(sid, code)
                except Exception:  # nothing received on it yet
                    logger.debug("stop of stream %d failed", sid, exc_info=True)
            self.conn.transmit()
        stream.send_finished = True
        stream._fail(StreamError(f"stream aborted locally (code {code:#x})"))
        self._streams.pop(sid, None)

    def _stop_reading(self, stream: H3Stream, code: int) -> None:
        if not stream.ended and stream.error is None:
            if self._error is None and self.conn.close_reason() is None:
                with contextlib.suppress(ValueError):  # nothing received on it yet
                    self._quic.stop_stream(stream.stream_id, code)
                self.conn.transmit()
            stream._chunks.clear()
            stream.buffered = 0
            stream._end()
        self._maybe_forget(stream)

    def _maybe_forget(self, stream: H3Stream) -> None:
        if stream.done:
            self._streams.pop(stream.stream_id, None)

    # -- events from the engine ------------------------------------------------------------

    def _on_quic_event(self, event: qe.QuicEvent) -> None:
        if isinstance(event, qe.HandshakeCompleted | qe.ConnectionTerminated):
            return  # the connection handles these; _on_conn_closed follows termination
        if isinstance(event, qe.StreamReset):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream._fail(StreamReset(event.error_code))
                self._streams.pop(event.stream_id, None)
        elif isinstance(event, qe.StopSendingReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.send_stopped = event.error_code
                stream._wake()
                self.conn._on_flushed()  # wake writers blocked on this stream
                self._maybe_forget(stream)
        for h3_event in self._h3.handle_event(event):
            self._dispatch(h3_event)
        self.conn.transmit()

    def _dispatch(self, event: h3e.H3Event) -> None:
        if isinstance(event, h3e.HeadersReceived):
            self._on_headers(event)
        elif isinstance(event, h3e.DataReceived):
            sid = event.stream_id
            stream = self._streams.get(sid)
            if stream is None:
                return  # a stream we already abandoned
            stream._feed(event.data)
            if stream.buffered > self._max_buffered:
                logger.debug("stream %d: peer ran %d bytes ahead", sid, stream.buffered)
                self._abort(stream, H3_EXCESSIVE_LOAD)
                stream.error = ProtocolError(
                    "peer sent more body than the read buffer holds", code=H3_EXCESSIVE_LOAD
                )
                return
            if event.stream_ended:
                stream._end()
                self._maybe_forget(stream)
        # Push promises, datagrams and WebTransport are not used over iroh+h3: ignored.

    def _on_headers(self, event: h3e.HeadersReceived) -> None:
        sid = event.stream_id
        stream = self._streams.get(sid)
        if stream is None:
            if self._on_request is None or sid & 0x3 != 0:
                return
            stream = H3Stream(self, sid)
            self._streams[sid] = stream
            stream._set_headers(event.headers)
            if event.stream_ended:
                stream.ended = True
            self._on_request(stream)
            return
        if stream.headers is None:
            status = dict(event.headers).get(b":status", b"")
            if status.startswith(b"1") and not event.stream_ended:
                return  # interim (1xx) response: the final one follows
            stream._set_headers(event.headers)
        # A later header block is trailers: we do not surface them.
        if event.stream_ended:
            stream._end()
            self._maybe_forget(stream)
