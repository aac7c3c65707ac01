"""``Router``: accept connections and hand each to the protocol handler for its ALPN.

Mirrors ``iroh::protocol``: build with ``Router.builder(endpoint).accept(alpn, handler)``, then
``spawn()``. A handler is either an async callable ``handler(conn)`` or an object with an
``async accept(conn)`` method (and optionally ``async shutdown()``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from .endpoint.connection import Connection
from .endpoint.endpoint import AcceptFilter, Endpoint
from .errors import EndpointClosed, IrohError

__all__ = ["AcceptError", "ProtocolHandler", "Router", "RouterBuilder"]

logger = logging.getLogger(__name__)

# Application close code sent when no handler exists for a negotiated ALPN (cannot normally
# happen: the endpoint only accepts registered ALPNs).
_NO_HANDLER_CODE = 1


class AcceptError(IrohError):
    """A protocol handler failed while handling an accepted connection."""


@runtime_checkable
class ProtocolHandler(Protocol):
    """A protocol implementation: called with each accepted connection for its ALPN."""

    async def accept(self, connection: Connection) -> None:
        """Handle one accepted connection of this handler's ALPN."""
        ...


Handler = ProtocolHandler | Callable[[Connection], Awaitable[None]]


class RouterBuilder:
    """Collects ``alpn -> handler`` pairs before the router starts."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._handlers: dict[bytes, Handler] = {}

    def accept(self, alpn: bytes, handler: Handler) -> RouterBuilder:
        """Route connections negotiated with ``alpn`` to ``handler``."""
        self._handlers[bytes(alpn)] = handler
        return self

    def accept_filter(self, accept_filter: AcceptFilter | None) -> RouterBuilder:
        """Refuse peers ``accept_filter(remote_id, alpn)`` rejects (see ``Endpoint``)."""
        self._endpoint.set_accept_filter(accept_filter)
        return self

    def spawn(self) -> Router:
        """Start accepting: sets the endpoint's ALPNs to the registered ones."""
        router = Router(self._endpoint, dict(self._handlers))
        router._start()
        return router


class Router:
    """Runs the accept loop of an endpoint and dispatches by ALPN."""

    def __init__(self, endpoint: Endpoint, handlers: dict[bytes, Handler]) -> None:
        self.endpoint = endpoint
        self._handlers = handlers
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def builder(endpoint: Endpoint) -> RouterBuilder:
        """A :class:`RouterBuilder` for ``endpoint``: register handlers, then ``spawn()``."""
        return RouterBuilder(endpoint)

    def _start(self) -> None:
        self.endpoint.set_alpns(list(self._handlers))
        self._task = asyncio.create_task(self._run(), name="aioiroh-router")

    async def _run(self) -> None:
        while True:
            try:
                conn = await self.endpoint.accept()
            except EndpointClosed:
                return
            handler = self._handlers.get(conn.alpn)
            if handler is None:
                conn.close(_NO_HANDLER_CODE, b"no handler for ALPN")
                continue
            task = asyncio.create_task(self._handle(handler, conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, handler: Handler, conn: Connection) -> None:
        try:
            if isinstance(handler, ProtocolHandler):
                await handler.accept(conn)
            else:
                await handler(conn)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("protocol handler for %r failed", conn.alpn)
            conn.close(_NO_HANDLER_CODE, b"handler error")

    @property
    def is_shutdown(self) -> bool:
        """True once :meth:`shutdown` has run."""
        return self._task is None or self._task.done()

    async def shutdown(self) -> None:
        """Stop handlers, call their ``shutdown()`` if any, and close the endpoint."""
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for handler in self._handlers.values():
            stop: Any = getattr(handler, "shutdown", None)
            if stop is not None:
                try:
                    await stop()
                except Exception:
                    logger.exception("protocol handler shutdown failed")
        await self.endpoint.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
