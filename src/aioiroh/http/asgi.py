"""Serve an ASGI application over HTTP/3 on iroh (ALPN ``iroh+h3``).

``await serve(app, endpoint)`` runs until cancelled or the endpoint closes. To share an endpoint
with other protocols, use :class:`AsgiServer` as a Router handler instead::

    server = AsgiServer(app)
    await server.startup()
    router = Router.builder(endpoint).accept(ALPN_H3, server).spawn()

Each request's scope carries the caller's authenticated EndpointId, so apps can authorise by
key: ``scope["extensions"]["iroh"]["remote_id"]`` (a :class:`~aioiroh.PublicKey`), and
``scope["client"]`` is ``(<endpoint id hex>, 0)``.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, Literal

from ..endpoint.connection import Connection
from ..endpoint.endpoint import Endpoint
from ..errors import EndpointClosed, IrohError, StreamError
from ._h3 import (
    ALPN_H3,
    H3_EXCESSIVE_LOAD,
    H3_INTERNAL_ERROR,
    H3_NO_ERROR,
    MAX_BUFFERED_BODY,
    H3Session,
    H3Stream,
    Headers,
)

__all__ = ["AsgiServer", "ClientDisconnected", "LifespanFailed", "serve"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: frameworks type scope/receive/send each their own way.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
LifespanMode = Literal["auto", "on", "off"]

# Requests being handled at once, over all connections; beyond it requests get a 503.
MAX_CONCURRENT_REQUESTS: Final = 512
# Connections served at once; beyond it new ones are closed at once.
MAX_CONNECTIONS: Final = 1024
# How long lifespan shutdown may take before the lifespan task is cancelled.
LIFESPAN_SHUTDOWN_TIMEOUT: Final = 10.0
_ASGI: Final = {"version": "3.0", "spec_version": "2.4"}


class ClientDisconnected(StreamError, OSError):
    """``send()`` after the client went away (ASGI asks for an ``OSError``)."""


class LifespanFailed(IrohError):
    """The application's lifespan startup failed, or it does not support lifespan (mode on)."""


class _Lifespan:
    """Runs the ASGI lifespan protocol for one server."""

    def __init__(self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any]) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self._inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=2)
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._failure: str | None = None
        self._unsupported = False
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        if self.mode == "off":
            return
        self._task = asyncio.create_task(self._run(), name="aioiroh-asgi-lifespan")
        self._inbox.put_nowait({"type": "lifespan.startup"})
        await self._started.wait()
        if self._failure is not None:
            await self._reap()
            raise LifespanFailed(self._failure)
        if self._unsupported and self.mode == "on":
            raise LifespanFailed("the application does not support lifespan")

    async def shutdown(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            async with asyncio.timeout(LIFESPAN_SHUTDOWN_TIMEOUT):
                await self._stopped.wait()
        except TimeoutError:
            logger.warning("ASGI lifespan shutdown did not finish in time")
        await self._reap()
        if self._failure is not None:
            logger.error("ASGI lifespan shutdown failed: %s", self._failure)

    async def _reap(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": dict(_ASGI), "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._send)
        except Exception as exc:
            if not self._started.is_set():
                # In auto mode an app that raises at once just has no lifespan support.
                self._unsupported = True
                if self.mode == "on":
                    self._failure = f"lifespan raised {exc!r}"
                logger.debug("ASGI lifespan unsupported: %r", exc)
            else:
                logger.exception("ASGI lifespan failed")
        finally:
            self._started.set()
            self._stopped.set()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._started.set()
        elif kind == "lifespan.startup.failed":
            self._failure = str(message.get("message", "")) or "startup failed"
            self._started.set()
        elif kind == "lifespan.shutdown.complete":
            self._stopped.set()
        elif kind == "lifespan.shutdown.failed":
            self._failure = str(message.get("message", "")) or "shutdown failed"
            self._stopped.set()
        else:
            raise RuntimeError(f"unexpected lifespan message {kind!r}")


class _Exchange:
    """One request/response: the ASGI ``receive`` and ``send`` callables over an H3 stream."""

    def __init__(self, stream: H3Stream) -> None:
        self.stream = stream
        self.body_done = False
        self.status: int | None = None
        self.response_headers: Headers = []
        self.headers_sent = False
        self.complete = False

    async def receive(self) -> Message:
        stream = self.stream
        if not self.body_done and stream.error is None:
            try:
                chunk = await stream.read()
            except IrohError:
                return {"type": "http.disconnect"}
            self.body_done = stream.at_eof
            return {"type": "http.request", "body": chunk, "more_body": not self.body_done}
        # After the body: block until the response is complete or the client goes away.
        await stream.wait_until(lambda: self.complete or stream.error is not None)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        stream = self.stream
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            self.response_headers = [
                (bytes(name).lower(), bytes(value)) for name, value in message.get("headers", [])
            ]
        elif kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                return
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            try:
                if not self.headers_sent:
                    self.headers_sent = True
                    head: Headers = [(b":status", str(self.status).encode())]
                    stream.send_headers(head + self.response_headers, end_stream=not (body or more))
                    if body or more:
                        await stream.send_data(body, end_stream=not more)
                elif body or not more:
                    await stream.send_data(body, end_stream=not more)
            except (IrohError, ValueError) as exc:  # aioquic: ValueError on a reset stream
                raise ClientDisconnected(f"client went away: {exc}") from exc
            if not more:
                self.complete = True
                stream._wake()  # a receive() waiting for the end returns http.disconnect
        elif kind == "http.response.trailers":
            pass  # not requested through http.response.start; nothing to send
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def send_error(self, status: int) -> None:
        """Answer with a bare status if nothing was sent yet, else abort the stream."""
        if not self.headers_sent:
            self.headers_sent = True
            self.complete = True
            try:
                self.stream.send_headers(
                    [(b":status", str(status).encode()), (b"content-length", b"0")],
                    end_stream=True,
                )
            except IrohError:
                pass
        elif not self.complete:
            self.stream.abort(H3_INTERNAL_ERROR)


class AsgiServer:
    """Serves one ASGI application on iroh connections (ALPN ``iroh+h3``).

    Usable as a :class:`~aioiroh.Router` protocol handler (``accept(conn)``; ``shutdown()``
    runs the lifespan shutdown). Call :meth:`startup` before handing it connections.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: LifespanMode = "auto",
        max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS,
        max_connections: int = MAX_CONNECTIONS,
        root_path: str = "",
        max_request_buffer: int = MAX_BUFFERED_BODY,
    ) -> None:
        self.app = app
        self.max_request_buffer = max_request_buffer
        self.max_concurrent_requests = max_concurrent_requests
        self.max_connections = max_connections
        self.root_path = root_path
        self.state: dict[str, Any] = {}
        self._lifespan = _Lifespan(app, lifespan, self.state)
        self._sessions: set[H3Session] = set()
        self._requests: set[asyncio.Task[None]] = set()
        self.requests_served = 0
        self.requests_refused = 0
        self._changed = asyncio.Event()  # replaced by a fresh one each time it is set

    @property
    def active_requests(self) -> int:
        """Requests being served now."""
        return len(self._requests)

    @property
    def connection_count(self) -> int:
        """Open client connections."""
        return len(self._sessions)

    async def wait_idle(self, *, connections: bool = False) -> None:
        """Wait until no request is being handled (``active_requests == 0``).

        With ``connections=True`` also wait until no connection is open
        (``connection_count == 0``), e.g. to drain before stopping the endpoint.
        """
        while self._requests or (connections and self._sessions):
            await self._changed.wait()

    def _notify(self) -> None:
        """Wake :meth:`wait_idle` callers: a request or a connection ended."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self._requests.discard(task)
        self._notify()

    async def startup(self) -> None:
        """Run the lifespan startup; raises :class:`LifespanFailed` if the app fails it."""
        await self._lifespan.startup()

    async def shutdown(self) -> None:
        """Abort requests still running, close connections, then run lifespan shutdown."""
        tasks = list(self._requests)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for session in list(self._sessions):
            session.close(H3_NO_ERROR, b"server shutting down")
        await self._lifespan.shutdown()

    async def accept(self, conn: Connection) -> None:
        """Serve HTTP/3 on ``conn`` until it closes."""
        if len(self._sessions) >= self.max_connections:
            conn.close(H3_EXCESSIVE_LOAD, b"too many connections")
            return
        tasks: set[asyncio.Task[None]] = set()

        def on_request(stream: H3Stream) -> None:
            if len(self._requests) >= self.max_concurrent_requests:
                self.requests_refused += 1
                exchange = _Exchange(stream)
                exchange.send_error(503)
                stream.stop_reading(H3_NO_ERROR)
                return
            task = asyncio.create_task(self._handle(conn, stream))
            tasks.add(task)
            self._requests.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(self._request_done)

        session = H3Session(conn, on_request=on_request, max_buffered=self.max_request_buffer)
        self._sessions.add(session)
        try:
            await session.closed()
        finally:
            self._sessions.discard(session)
            self._notify()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not session.is_closed:
                session.close(H3_NO_ERROR, b"")

    def _scope(self, conn: Connection, stream: H3Stream) -> Scope | None:
        pseudo: dict[bytes, bytes] = {}
        headers: Headers = []
        for name, value in stream.headers or []:
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                headers.append((name, value))
        method = pseudo.get(b":method")
        target = pseudo.get(b":path")
        if method is None or target is None or not target:
            return None
        authority = pseudo.get(b":authority")
        if authority is not None and not any(n == b"host" for n, _ in headers):
            headers.insert(0, (b"host", authority))
        raw_path, _, query = target.partition(b"?")
        remote = conn.remote_id
        return {
            "type": "http",
            "asgi": dict(_ASGI),
            "http_version": "3",
            "method": method.decode("ascii", "replace"),
            "scheme": pseudo.get(b":scheme", b"https").decode("ascii", "replace"),
            "path": urllib.parse.unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": self.root_path,
            "headers": headers,
            "client": (str(remote), 0),
            "server": None,
            "state": dict(self.state),
            "extensions": {"iroh": {"remote_id": remote, "connection": conn}},
        }

    async def _handle(self, conn: Connection, stream: H3Stream) -> None:
        exchange = _Exchange(stream)
        scope = self._scope(conn, stream)
        if scope is None:
            exchange.send_error(400)
            stream.stop_reading(H3_NO_ERROR)
            return
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if stream.error is not None or stream.send_stopped is not None:
                # Frameworks turn our ClientDisconnected into their own errors: the client
                # went away, which is not the application's fault.
                logger.debug("client went away during %s %s", scope["method"], scope["path"])
            else:
                logger.exception("ASGI application failed on %s %s", scope["method"], scope["path"])
        finally:
            self.requests_served += 1
            if not exchange.complete:
                exchange.send_error(500)
            # The body the app did not read is not wanted (RFC 9114 §4.1: H3_NO_ERROR).
            stream.stop_reading(H3_NO_ERROR)


async def serve(
    app: ASGIApp,
    endpoint: Endpoint,
    *,
    lifespan: LifespanMode = "auto",
    max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS,
    max_connections: int = MAX_CONNECTIONS,
    root_path: str = "",
    max_request_buffer: int = MAX_BUFFERED_BODY,
    started: Callable[[AsgiServer], None] | None = None,
) -> None:
    """Serve ``app`` on ``endpoint`` over HTTP/3 (ALPN ``iroh+h3``) until cancelled.

    Adds ``iroh+h3`` to the endpoint's ALPNs and runs its accept loop, so connections on other
    ALPNs are closed; use :class:`AsgiServer` with a Router to share the endpoint. Returns when
    the endpoint is closed. ``started`` is called once lifespan startup is done.
    ``max_request_buffer``: request body bytes a client may send ahead of the app's reads
    before its request is aborted with H3_EXCESSIVE_LOAD.
    """
    server = AsgiServer(
        app,
        lifespan=lifespan,
        max_concurrent_requests=max_concurrent_requests,
        max_connections=max_connections,
        root_path=root_path,
        max_request_buffer=max_request_buffer,
    )
    if ALPN_H3 not in endpoint.alpns:
        endpoint.set_alpns([*endpoint.alpns, ALPN_H3])
    await server.startup()
    tasks: set[asyncio.Task[None]] = set()
    try:
        if started is not None:
            started(server)
        while True:
            try:
                conn = await endpoint.accept()
            except EndpointClosed:
                return
            if conn.alpn != ALPN_H3:
                conn.close(1, b"only iroh+h3 is served here")
                continue
            task = asyncio.create_task(server.accept(conn), name="aioiroh-asgi-conn")
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.shutdown()
