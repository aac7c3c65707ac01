"""asyncio UDP driver around the sans-I/O :class:`~aioiroh.dht.rpc.Rpc` core."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Sequence
from typing import Any, Final

from .bencode import Bencodable
from .routing import Addr, decode_compact_nodes
from .rpc import (
    DhtError,
    ErrorReply,
    Lookup,
    MutableItem,
    Response,
    Rpc,
    mutable_target,
    parse_item,
)

__all__ = ["DEFAULT_BOOTSTRAP", "Dht"]

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP: Final[tuple[Addr, ...]] = (
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("dht.libtorrent.org", 25401),
    ("relay.pkarr.org", 6881),
)
"""The well-known routers Rust mainline bootstraps from (never used by the tests)."""
_TICK: Final = 0.5


LOOKUP_TIMEOUT: Final = 10.0
"""Seconds after which a lookup stops and uses the nodes it has found so far."""
REFRESH_INTERVAL: Final = 900.0
"""Seconds between routing-table refreshes (BEP 5: 15 minutes)."""


def _ignore_result(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("dht refresh failed: %r", task.exception())


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, dht: Dht) -> None:
        self.dht = dht

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.dht._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("dht socket error: %r", exc)


class Dht:
    """A Mainline DHT node on one UDP socket.

    Create with :meth:`create`; read-only (BEP 43) unless ``server_mode=True``. Bootstrap
    addresses may be host names; they are resolved once at :meth:`bootstrap`.
    """

    def __init__(self, rpc: Rpc, bootstrap: Sequence[Addr]) -> None:
        self.rpc = rpc
        self._bootstrap = list(bootstrap)
        self._transport: asyncio.DatagramTransport | None = None
        self._waiters: dict[bytes, asyncio.Future[Response | ErrorReply]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[int] | None = None
        self.packets_sent = 0
        self.lookup_timeout = LOOKUP_TIMEOUT
        """Upper bound on one iterative lookup, seconds."""

    @classmethod
    async def create(
        cls,
        *,
        bind: Addr = ("0.0.0.0", 0),
        bootstrap: Sequence[Addr] = DEFAULT_BOOTSTRAP,
        server_mode: bool = False,
        node_id: bytes | None = None,
        max_items: int | None = None,
    ) -> Dht:
        """Bind a UDP socket and start the timer task (no traffic until used)."""
        kwargs = {} if max_items is None else {"max_items": max_items}
        rpc = Rpc(node_id, server_mode=server_mode, now=time.monotonic(), **kwargs)
        dht = cls(rpc, bootstrap)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(dht), local_addr=bind)
        dht._transport = transport
        dht._ticker = loop.create_task(dht._tick(), name="dht-timer")
        return dht

    @property
    def local_addr(self) -> Addr:
        """The bound UDP address."""
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return (host, port)

    @property
    def node_id(self) -> bytes:
        return self.rpc.node_id

    # -- I/O ----------------------------------------------------------------------------------

    def _send(self, data: bytes, addr: Addr) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self.packets_sent += 1
        self._transport.sendto(data, addr)

    def _on_datagram(self, data: bytes, addr: Addr) -> None:
        reply, event = self.rpc.receive(data, addr, time.monotonic())
        if reply is not None:
            self._send(reply, addr)
        if event is not None:
            fut = self._waiters.pop(event.tid, None)
            if fut is not None and not fut.done():
                fut.set_result(event)

    async def _tick(self) -> None:
        next_refresh = time.monotonic() + REFRESH_INTERVAL
        while True:
            await asyncio.sleep(_TICK)
            if time.monotonic() >= next_refresh and (self._refresh is None or self._refresh.done()):
                # Keep the table fresh as BEP 5 asks: look our own id up again.
                next_refresh = time.monotonic() + REFRESH_INTERVAL
                self._refresh = asyncio.ensure_future(self.bootstrap())
                self._refresh.add_done_callback(_ignore_result)
            for tid, _addr in self.rpc.expire(time.monotonic()):
                fut = self._waiters.pop(tid, None)
                if fut is not None and not fut.done():
                    fut.set_exception(DhtError("query timed out"))

    async def request(
        self, addr: Addr, method: bytes, args: dict[bytes, Bencodable]
    ) -> Response | ErrorReply:
        """Send one query and await its reply; :class:`DhtError` on timeout."""
        tid, data = self.rpc.query(addr, method, args, time.monotonic())
        fut: asyncio.Future[Response | ErrorReply] = asyncio.get_running_loop().create_future()
        self._waiters[tid] = fut
        self._send(data, addr)
        try:
            return await fut
        finally:
            self._waiters.pop(tid, None)
            self.rpc.cancel(tid)

    async def ping(self, addr: Addr) -> bytes:
        """Ping ``addr``; return its node id."""
        reply = await self.request(addr, b"ping", {})
        if isinstance(reply, ErrorReply):
            raise DhtError(f"ping refused: {reply.code} {reply.message}", reply.code)
        return reply.node_id

    # -- lookups ------------------------------------------------------------------------------

    async def _resolved_bootstrap(self) -> list[Addr]:
        out: list[Addr] = []
        loop = asyncio.get_running_loop()
        for host, port in self._bootstrap:
            try:
                infos = await loop.getaddrinfo(
                    host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
                )
            except OSError:
                continue
            out.extend((str(i[4][0]), int(i[4][1])) for i in infos[:1])
        return out

    async def _lookup(
        self, method: bytes, target: bytes, extra: dict[bytes, Bencodable] | None = None
    ) -> tuple[Lookup, list[Response]]:
        seeds = self.rpc.routing.closest(target)
        boot = await self._resolved_bootstrap() if len(seeds) < 8 else []
        lookup = Lookup(target, seeds, boot)
        key = b"target"
        args: dict[bytes, Bencodable] = {key: target, **(extra or {})}
        responses: list[Response] = []
        deadline = time.monotonic() + self.lookup_timeout
        inflight: set[asyncio.Task[tuple[Addr, Response | ErrorReply | None]]] = set()

        async def one(addr: Addr) -> tuple[Addr, Response | ErrorReply | None]:
            try:
                return addr, await self.request(addr, method, args)
            except DhtError:
                return addr, None

        try:
            while True:
                for addr in lookup.next_addrs():
                    inflight.add(asyncio.ensure_future(one(addr)))
                remaining = deadline - time.monotonic()
                if not inflight or remaining <= 0:
                    # A lookup ends when it converges or at the deadline, whichever first, so
                    # nodes that hand out dead addresses cannot stall it.
                    break
                done, inflight = await asyncio.wait(
                    inflight, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    addr, reply = task.result()
                    if isinstance(reply, Response):
                        nodes_raw = reply.body.get(b"nodes")
                        nodes = (
                            decode_compact_nodes(nodes_raw) if isinstance(nodes_raw, bytes) else []
                        )
                        token = reply.body.get(b"token")
                        lookup.on_response(
                            addr, reply.node_id, nodes, token if isinstance(token, bytes) else None
                        )
                        responses.append(reply)
                    else:
                        lookup.on_failure(addr)
                if lookup.done and not inflight:
                    break
        finally:
            for task in inflight:
                task.cancel()
        return lookup, responses

    async def bootstrap(self) -> int:
        """Fill the routing table with a lookup of our own id; return the table size."""
        await self._lookup(b"find_node", self.node_id)
        return len(self.rpc.routing)

    async def get_mutable(self, public_key: bytes, salt: bytes = b"") -> list[MutableItem]:
        """Every valid item for ``public_key`` that the closest nodes returned (invalid ones
        are dropped and counted in ``rpc.stats``)."""
        target = mutable_target(public_key, salt)
        _, responses = await self._lookup(b"get", target)
        items: list[MutableItem] = []
        for r in responses:
            try:
                item = parse_item(r, target)
            except DhtError as exc:
                self.rpc.stats["bad_items"] += 1
                log.debug("dropped item from %s: %s", r.addr, exc)
                continue
            if item is not None and item.salt == salt:
                items.append(item)
        return items

    async def get_mutable_most_recent(
        self, public_key: bytes, salt: bytes = b""
    ) -> MutableItem | None:
        """The item with the highest ``seq`` among the responses (ties: larger value)."""
        items = await self.get_mutable(public_key, salt)
        if not items:
            return None
        return max(items, key=lambda i: (i.seq, i.value))

    async def put_mutable(self, item: MutableItem, cas: int | None = None) -> int:
        """Store ``item`` on the closest nodes; return how many accepted it.

        Raises :class:`DhtError` if no node accepted (with the last error code seen).
        """
        lookup, _ = await self._lookup(b"get", item.target)
        targets = [(n, t) for n, t in lookup.closest_answered() if t is not None]
        args: dict[bytes, Bencodable] = {
            b"k": item.public_key,
            b"seq": item.seq,
            b"sig": item.signature,
            b"v": item.value,
        }
        if item.salt:
            args[b"salt"] = item.salt
        if cas is not None:
            args[b"cas"] = cas

        async def one(addr: Addr, token: bytes) -> Response | ErrorReply | None:
            try:
                return await self.request(addr, b"put", {**args, b"token": token})
            except DhtError:
                return None

        replies = await asyncio.gather(*(one(n.addr, t) for n, t in targets))
        ok = sum(1 for r in replies if isinstance(r, Response))
        if ok == 0:
            codes = [r.code for r in replies if isinstance(r, ErrorReply)]
            raise DhtError(
                f"no node stored the item ({len(targets)} asked)", codes[-1] if codes else None
            )
        return ok

    async def aclose(self) -> None:
        """Stop the timer and close the socket; pending requests fail."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
            self._refresh = None
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(DhtError("dht closed"))
        self._waiters.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> Dht:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
