"""``IrohTransport``: an httpx transport that sends requests over HTTP/3 on iroh (``iroh+h3``).

Usage::

    async with httpx.AsyncClient(transport=IrohTransport(endpoint)) as client:
        r = await client.get(f"iroh://{peer_id.to_base32()}/status")

The URL host is the peer's EndpointId: 52 characters of base32 (fits a DNS label) or 64 of hex.
``http://`` and ``https://`` URLs whose host is an EndpointId work the same way. One QUIC
connection is kept per peer and shared by all requests to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Final

import httpx

from ..base.endpoint_addr import EndpointAddr
from ..base.key import PublicKey
from ..endpoint.endpoint import DEFAULT_CONNECT_TIMEOUT, Endpoint
from ..errors import (
    ConnectError,
    ConnectionClosedByPeer,
    ConnectTimeout,
    EndpointClosed,
    IrohError,
    KeyParseError,
    ProtocolError,
    StreamError,
)
from ._h3 import ALPN_H3, H3_REQUEST_CANCELLED, H3Session, H3Stream, Headers

__all__ = ["IrohTransport"]

logger = logging.getLogger(__name__)

# Peers with an open connection; beyond this the least recently used idle one is closed.
MAX_CONNECTIONS: Final = 64
# Hop-by-hop headers that HTTP/3 forbids (RFC 9114 §4.2); ``host`` becomes ``:authority``.
_DROP_HEADERS: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host"}
)
_SCHEMES: Final = frozenset({"iroh", "http", "https"})


def peer_from_url(url: httpx.URL) -> PublicKey:
    """The EndpointId named by a request URL's host (base32 or hex)."""
    if url.scheme not in _SCHEMES:
        raise httpx.UnsupportedProtocol(f"IrohTransport cannot send {url.scheme!r} URLs")
    try:
        return PublicKey.parse(url.host)
    except KeyParseError as exc:
        raise httpx.ConnectError(f"URL host is not an endpoint id: {exc}") from None


@contextlib.contextmanager
def _map_errors(phase: str) -> Iterator[None]:
    """Turn our errors (and timeouts) into the httpx exception for this phase of a request."""
    timeout_exc: type[httpx.TimeoutException]
    error_exc: type[httpx.TransportError]
    if phase == "write":
        timeout_exc, error_exc = httpx.WriteTimeout, httpx.WriteError
    elif phase == "connect":
        timeout_exc, error_exc = httpx.ConnectTimeout, httpx.ConnectError
    else:
        timeout_exc, error_exc = httpx.ReadTimeout, httpx.ReadError
    try:
        yield
    except TimeoutError as exc:  # asyncio.timeout, and our ConnectTimeout
        if isinstance(exc, ConnectTimeout):
            raise httpx.ConnectTimeout(str(exc)) from exc
        raise timeout_exc(f"{phase} timed out") from exc
    except (ConnectError, EndpointClosed) as exc:
        raise httpx.ConnectError(str(exc)) from exc
    except (ConnectionClosedByPeer, StreamError, ProtocolError) as exc:
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except IrohError as exc:  # TimedOut, LocallyClosed: the connection is gone
        raise error_exc(str(exc)) from exc


def _timeout(timeouts: dict[str, float | None], key: str) -> asyncio.Timeout:
    return asyncio.timeout(timeouts.get(key))


class _ResponseStream(httpx.AsyncByteStream):
    """The response body, read from the H3 stream as the application iterates."""

    def __init__(self, stream: H3Stream, read_timeout: float | None) -> None:
        self._stream = stream
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            with _map_errors("read"):
                async with asyncio.timeout(self._read_timeout):
                    chunk = await self._stream.read()
            if not chunk:
                return
            yield chunk

    async def aclose(self) -> None:
        # Closing before the end tells the server we stopped listening.
        stream = self._stream
        if not stream.ended and stream.error is None:
            stream.abort(H3_REQUEST_CANCELLED)


class IrohTransport(httpx.AsyncBaseTransport):
    """Send httpx requests to iroh endpoints over HTTP/3 (ALPN ``iroh+h3``).

    ``endpoint``: the local :class:`~aioiroh.Endpoint` to dial from. ``addrs``: addresses to
    dial known peers at (when there is no address lookup); other peers are dialed by id alone.
    ``alpn``: the ALPN to dial (default ``iroh+h3``).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        addrs: Iterable[EndpointAddr] = (),
        alpn: bytes = ALPN_H3,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.endpoint = endpoint
        self.alpn = bytes(alpn)
        self.max_connections = max_connections
        self._addrs: dict[PublicKey, EndpointAddr] = {a.id: a for a in addrs}
        self._sessions: dict[PublicKey, H3Session] = {}
        self._dialing: dict[PublicKey, asyncio.Future[H3Session]] = {}
        self._closed = False

    def add_addr(self, addr: EndpointAddr) -> None:
        """Remember where a peer can be dialed."""
        self._addrs[addr.id] = addr

    @property
    def connection_count(self) -> int:
        """Open connections (one per peer)."""
        return sum(1 for s in self._sessions.values() if not s.is_closed)

    # -- connections -----------------------------------------------------------------------

    async def _session(self, peer: PublicKey, connect_timeout: float | None) -> H3Session:
        while True:
            session = self._sessions.get(peer)
            if session is not None and not session.is_closed:
                # Most recently used last, for eviction.
                self._sessions[peer] = self._sessions.pop(peer)
                return session
            pending = self._dialing.get(peer)
            if pending is None:
                break
            # Another request is dialing this peer: share its connection (or its failure).
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
            if pending.done() and not pending.cancelled() and pending.exception() is not None:
                raise pending.exception()  # type: ignore[misc]
        if self._closed:
            raise httpx.ConnectError("transport is closed")
        fut: asyncio.Future[H3Session] = asyncio.get_running_loop().create_future()
        self._dialing[peer] = fut
        try:
            target: EndpointAddr | PublicKey = self._addrs.get(peer, peer)
            timeout = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
            with _map_errors("connect"):
                conn = await self.endpoint.connect(target, self.alpn, timeout=timeout)
            session = H3Session(conn)
            self._evict()
            self._sessions[peer] = session
            fut.set_result(session)
            return session
        except BaseException as exc:
            if isinstance(exc, Exception):
                fut.set_exception(exc)
                fut.exception()
            else:
                fut.cancel()
            raise
        finally:
            self._dialing.pop(peer, None)

    def _evict(self) -> None:
        for peer, session in list(self._sessions.items()):
            if session.is_closed:
                del self._sessions[peer]
        while len(self._sessions) >= self.max_connections:
            idle = [p for p, s in self._sessions.items() if s.active_streams == 0]
            if not idle:
                raise httpx.PoolTimeout(f"{self.max_connections} peers busy")
            self._sessions.pop(idle[0]).close(0, b"idle")

    # -- requests --------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one httpx request over HTTP/3 to the iroh endpoint in its URL's host."""
        if self._closed:
            raise RuntimeError("IrohTransport is closed")
        peer = peer_from_url(request.url)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        session = await self._session(peer, timeouts.get("connect"))
        has_body = request.headers.get("content-length", "0") != "0" or (
            "transfer-encoding" in request.headers
        )
        headers: Headers = [
            (b":method", request.method.encode("ascii")),
            (b":scheme", b"https"),
            (b":authority", request.url.netloc),
            (b":path", request.url.raw_path),
        ]
        headers += [
            (name.lower(), value)
            for name, value in request.headers.raw
            if name.lower() not in _DROP_HEADERS
        ]
        with _map_errors("write"):
            stream = session.open_stream(headers, end_stream=not has_body)
        try:
            if has_body:
                await self._send_body(request, stream, timeouts.get("write"))
            with _map_errors("read"):
                async with _timeout(timeouts, "read"):
                    raw = await stream.wait_headers()
        except BaseException:
            stream.abort(H3_REQUEST_CANCELLED)
            raise
        status = 0
        response_headers: Headers = []
        for name, value in raw:
            if name == b":status":
                status = int(value)
            elif not name.startswith(b":"):
                response_headers.append((name, value))
        if not 100 <= status <= 999:
            stream.abort(H3_REQUEST_CANCELLED)
            raise httpx.RemoteProtocolError(f"response has no valid :status ({status})")
        return httpx.Response(
            status,
            headers=response_headers,
            stream=_ResponseStream(stream, timeouts.get("read")),
            extensions={"http_version": b"HTTP/3", "iroh_remote_id": peer},
        )

    async def _send_body(
        self, request: httpx.Request, stream: H3Stream, write_timeout: float | None
    ) -> None:
        try:
            with _map_errors("write"):
                async for chunk in request.stream:  # type: ignore[union-attr]
                    async with asyncio.timeout(write_timeout):
                        await stream.send_data(chunk)
                async with asyncio.timeout(write_timeout):
                    await stream.send_data(b"", end_stream=True)
        except httpx.RemoteProtocolError:
            # The server may answer before reading the whole body (e.g. 413 then STOP_SENDING);
            # if its response is there, return it instead of the write failure.
            if stream.headers is None:
                raise

    async def aclose(self) -> None:
        """Close every connection this transport opened (the endpoint stays open)."""
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            session.close(0, b"")

    def __repr__(self) -> str:
        return f"IrohTransport(endpoint={self.endpoint!r}, connections={self.connection_count})"
