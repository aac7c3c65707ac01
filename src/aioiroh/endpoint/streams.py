"""QUIC streams as asyncio objects: :class:`SendStream` and :class:`RecvStream` (iroh's names)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Final

from ..errors import ReadTooLong, StreamError, StreamReset, StreamStopped

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["RecvStream", "SendStream"]

# write() hands data to QUIC in chunks, never more than the peer's stream window allows
# (the engine's send_capacity) nor more than HIGH_WATER + WRITE_CHUNK unacknowledged bytes,
# so a writer is held to the window of a slow reader and cannot buffer without bound.
WRITE_CHUNK: Final = 256 * 1024
HIGH_WATER: Final = 2 * 1024 * 1024
DEFAULT_READ: Final = 64 * 1024


class SendStream:
    """The sending half of a stream."""

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self._conn = conn
        self.id = stream_id
        self._finished = False
        self._error: BaseException | None = None
        self._stopped: asyncio.Future[int | None] = conn._loop.create_future()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        if isinstance(exc, StreamStopped) and not self._stopped.done():
            self._stopped.set_result(exc.code)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        self._conn._check_open()
        if self._finished:
            raise StreamError("stream already finished")

    async def write(self, data: bytes) -> int:
        """Write all of ``data``, waiting for flow control; returns ``len(data)``."""
        await self.write_all(data)
        return len(data)

    async def write_all(self, data: bytes) -> None:
        """Write all of ``data``; waits while the peer's window is full (back-pressure)."""
        self._check()
        view = memoryview(data)
        start, size = 0, len(view)
        while start < size:
            room = self._conn._send_room(self.id)
            if room <= 0:
                await self._conn._wait_writable()
                self._check()
                continue
            stop = start + min(room, WRITE_CHUNK)
            self._conn._send_stream_data(self.id, bytes(view[start:stop]))
            start = stop

    def writable(self) -> int:
        """Bytes :meth:`write_all` would queue right now without waiting (0: the peer's
        window or our send buffer is full)."""
        if self._error is not None or self._finished:
            return 0
        return max(0, self._conn._send_room(self.id))

    async def finish(self) -> None:
        """Mark the end of the stream; the data written so far will be delivered."""
        self._check()
        self._finished = True
        self._conn._send_stream_data(self.id, b"", end_stream=True)
        self._conn._watch_acked(self)

    def reset(self, error_code: int = 0) -> None:
        """Abandon the stream: unsent data is dropped and the peer sees ``error_code``."""
        if self._finished and self._conn._quic.send_buffer_size(self.id) == 0:
            return
        self._finished = True
        self._conn._reset_stream(self.id, error_code)
        self._conn._send_done(self)

    async def stopped(self) -> int | None:
        """Wait until the stream is done with, like Rust's ``stopped()``.

        Returns the peer's error code if it stopped the stream, or ``None`` once the stream is
        finished and everything written was acknowledged (safe to close the connection).
        """
        return await self._stopped

    def _acked(self) -> None:
        if not self._stopped.done():
            self._stopped.set_result(None)
        self._conn._send_done(self)

    def __repr__(self) -> str:
        return f"SendStream(id={self.id})"


class RecvStream:
    """The receiving half of a stream."""

    def __init__(self, conn: Connection, stream_id: int, *, accepted: bool = True) -> None:
        self._conn = conn
        self.id = stream_id
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._stopped = False
        self._accepted = accepted
        """Local streams are the application's at once; a peer's once accepted."""
        self._released = False

    # -- fed by the connection -------------------------------------------------------------

    def _feed(self, data: bytes, end_stream: bool) -> None:
        if data and not self._stopped:
            self._chunks.append(data)
        if end_stream:
            self._eof = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None and not self._eof:
            self._error = exc
        self._wake()
        if isinstance(exc, StreamReset):
            self._check_done()

    def _accept(self) -> None:
        self._accepted = True
        self._check_done()

    def _check_done(self) -> None:
        """Release the stream (engine credit, connection tables) once the application has
        it and it has ended: read to the end, reset by the peer, or stopped."""
        if self._released or not self._accepted:
            return
        if (
            (self._eof and not self._chunks)
            or self._stopped
            or isinstance(self._error, StreamReset)
        ):
            self._released = True
            self._conn._recv_done(self)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._conn._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # -- API -------------------------------------------------------------------------------

    async def read(self, n: int = DEFAULT_READ) -> bytes:
        """Read up to ``n`` bytes; ``b""`` once the stream is finished."""
        while not self._chunks:
            if self._eof:
                self._check_done()
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()
        chunk = self._chunks[0]
        if len(chunk) <= n:
            self._chunks.popleft()
        else:
            self._chunks[0] = chunk[n:]
            chunk = chunk[:n]
        # Receive credit is granted from what the application consumed (RFC 9000 §4).
        self._conn._consumed(self.id, len(chunk))
        if self._eof and not self._chunks:
            self._check_done()
        return chunk

    async def read_exact(self, n: int) -> bytes:
        """Read exactly ``n`` bytes; raises :class:`StreamError` if the stream ends first."""
        parts: list[bytes] = []
        need = n
        while need > 0:
            chunk = await self.read(need)
            if not chunk:
                raise StreamError(f"stream finished after {n - need} of {n} bytes")
            parts.append(chunk)
            need -= len(chunk)
        return b"".join(parts)

    async def read_to_end(self, limit: int) -> bytes:
        """Read until the stream is finished; raises :class:`ReadTooLong` past ``limit``."""
        parts: list[bytes] = []
        total = 0
        while True:
            chunk = await self.read(DEFAULT_READ * 16)
            if not chunk:
                return b"".join(parts)
            total += len(chunk)
            if total > limit:
                self.stop(0)
                raise ReadTooLong(f"stream is longer than {limit} bytes")
            parts.append(chunk)

    def stop(self, error_code: int = 0) -> None:
        """Tell the peer to stop sending; buffered data is discarded."""
        if self._stopped or self._eof:
            return
        self._stopped = True
        self._chunks.clear()
        self._conn._stop_stream(self.id, error_code)
        self._fail(StreamError("stream stopped locally"))
        self._check_done()

    async def received_reset(self) -> int | None:
        """Wait for the end of the stream; the peer's reset code, or None if it finished."""
        while not self._eof and self._error is None:
            await self._wait()
        if isinstance(self._error, StreamReset):
            return self._error.code
        return None

    def __repr__(self) -> str:
        return f"RecvStream(id={self.id})"


def is_unidirectional(stream_id: int) -> bool:
    return bool(stream_id & 2)


def is_client_initiated(stream_id: int) -> bool:
    return not stream_id & 1
