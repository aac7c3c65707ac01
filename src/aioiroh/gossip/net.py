"""The asyncio driver of iroh-gossip on an :class:`~aioiroh.Endpoint` (Rust ``iroh_gossip::net``).

Usage::

    gossip = await Gossip.spawn(endpoint)
    router = Router.builder(endpoint).accept(GOSSIP_ALPN, gossip).spawn()
    topic = await gossip.subscribe(topic_id, bootstrap=[peer_id])
    await topic.joined()
    await topic.broadcast(b"hello")
    async for event in topic:
        ...

The protocol logic is the sans-I/O :class:`~aioiroh.gossip.proto.State`; this module feeds it
connection bytes and timer expiries and carries out what it asks. All of that runs as plain
callbacks on the event loop (the state is never awaited), with one reader task per stream and
one writer task per peer. Every queue is bounded: a peer whose send queue overflows is dropped
(as if its connection failed), a subscriber that does not keep up gets :class:`Lagged`.

``/iroh-gossip/0`` (Rust 0.35: one bi stream per connection, the topic in every frame) is
off by default; ``Gossip.spawn(..., legacy_v0=True)`` accepts it and falls back to it when a
peer refuses ``/iroh-gossip/1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ..base.endpoint_addr import EndpointAddr
from ..base.key import PublicKey
from ..base.ticket import EndpointTicket
from ..endpoint.connection import Connection
from ..endpoint.endpoint import Endpoint
from ..endpoint.streams import RecvStream, SendStream
from ..errors import AlpnMismatchError, IrohError
from .framing import ALPN_V0, ALPN_V1, FrameDecoder, MessageTooLarge, decode_stream_header
from .messages import (
    AddrInfo,
    DeliveryScope,
    Disconnect,
    GossipError,
    Message,
    MessageId,
    PeerData,
    ProtoMessage,
    TopicId,
    decode_message,
    decode_proto_message,
    encode_message,
    encode_proto_message,
)
from .messages import (
    Gossip as GossipMsg,
)
from .proto import (
    Config,
    DisconnectPeer,
    EmitEvent,
    NeighborDown,
    NeighborUp,
    OutEvent,
    PeerDataUpdate,
    Received,
    ScheduleTimer,
    SendMessage,
    State,
    Timer,
)

__all__ = [
    "GOSSIP_ALPN",
    "Event",
    "Gossip",
    "GossipStats",
    "GossipTopic",
    "Lagged",
    "NeighborDown",
    "NeighborUp",
    "Received",
    "TopicClosed",
]

logger = logging.getLogger(__name__)

GOSSIP_ALPN: Final = ALPN_V1

SEND_QUEUE_MAX_FRAMES: Final = 4096
"""Frames queued for one peer before it is dropped as too slow."""
SEND_QUEUE_MAX_BYTES: Final = 4 * 1024 * 1024
"""Bytes queued for one peer before it is dropped as too slow."""
PENDING_DIAL_MAX: Final = 256
"""Messages held for a peer while dialing it."""
TOPIC_EVENT_CAP: Final = 2048
"""Events a subscriber may leave unread before it gets :class:`Lagged`."""
BROADCAST_HIGH_WATER: Final = 256
"""A local broadcast waits while some peer has more frames than this queued."""
SLOW_PEER_TIMEOUT: Final = 5.0
"""A peer whose queue stays deep this long while we want to broadcast is dropped."""
MAX_KNOWN_ADDRS: Final = 4096
"""Addresses remembered from PeerData (least recently learned dropped first)."""
MAX_STREAMS_PER_CONN: Final = 64
"""Topic streams one connection may have open towards us."""
HEADER_TIMEOUT: Final = 10.0
CLOSE_LINGER: Final = 2.0
"""How long a dropped peer's streams may take to be acknowledged before we close."""
READ_CHUNK: Final = 16 * 1024

_DISCONNECT_CODE: Final = 0
_SLOW_PEER_CODE: Final = 2


class TopicClosed(GossipError):
    """The topic handle (or the whole gossip instance) is closed."""


@dataclass(slots=True)
class GossipStats:
    """Frames (and their bytes, length prefix included) handed to peers' send queues."""

    data_frames: int = 0
    data_bytes: int = 0
    control_frames: int = 0
    control_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Lagged:
    """The subscriber fell behind and missed events."""


Event: TypeAlias = Received[PublicKey] | NeighborUp[PublicKey] | NeighborDown[PublicKey] | Lagged


# -- per-peer connection state ----------------------------------------------------------------


class _Frame:
    __slots__ = ("data", "last", "topic")

    def __init__(self, topic: TopicId, data: bytes, last: bool) -> None:
        self.topic = topic
        self.data = data
        self.last = last


class _Peer:
    """Our link to one peer: the send connection, its writer task and the frame queue."""

    def __init__(self, gossip: Gossip, peer: PublicKey) -> None:
        self.gossip = gossip
        self.id = peer
        self.conn: Connection | None = None
        self.v0 = False
        self.queue: deque[_Frame] = deque()
        self.queued_bytes = 0
        self.pending: list[tuple[TopicId, Message[PublicKey]]] = []
        self.wake = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None
        self.closing = False
        self.v0_send: SendStream | None = None
        self.v0_ready = asyncio.Event()

    def enqueue(self, topic: TopicId, msg: Message[PublicKey]) -> bool:
        """Queue a message; False if the queue is over its bounds."""
        if self.conn is None:
            if len(self.pending) >= PENDING_DIAL_MAX:
                return False
            self.pending.append((topic, msg))
            return True
        try:
            if self.v0:
                body = encode_proto_message(ProtoMessage(topic, msg))
            else:
                body = encode_message(msg)
            if len(body) >= self.gossip.max_message_size:
                raise MessageTooLarge(f"{len(body)} bytes")
        except GossipError as exc:
            logger.debug("gossip: not sending %s to %s: %s", type(msg).__name__, self.id, exc)
            return True
        frame = len(body).to_bytes(4, "big") + body
        if (
            len(self.queue) >= SEND_QUEUE_MAX_FRAMES
            or self.queued_bytes + len(frame) > SEND_QUEUE_MAX_BYTES
        ):
            return False
        self.queue.append(_Frame(topic, frame, isinstance(msg, Disconnect)))
        self.queued_bytes += len(frame)
        stats = self.gossip.stats
        if isinstance(msg, GossipMsg):
            stats.data_frames += 1
            stats.data_bytes += len(frame)
        else:
            stats.control_frames += 1
            stats.control_bytes += len(frame)
        self.wake.set()
        return True

    def attach(self, conn: Connection, v0: bool) -> None:
        """Use ``conn`` for sending from now on and flush what waited for it."""
        self.conn = conn
        self.v0 = v0
        if self.writer is None:
            self.writer = self.gossip._spawn(self._write_loop(conn), writer=True)
        pending, self.pending = self.pending, []
        for topic, msg in pending:
            self.enqueue(topic, msg)

    async def _write_loop(self, conn: Connection) -> None:
        streams: dict[TopicId, SendStream] = {}
        finishing: list[SendStream] = []
        try:
            while True:
                while not self.queue:
                    if self.closing:
                        return
                    self.wake.clear()
                    await self.wake.wait()
                if self.conn is not None and self.conn is not conn:
                    # A newer connection replaced this one: continue on it.
                    for s in streams.values():
                        with contextlib.suppress(IrohError):
                            await s.finish()
                    streams.clear()
                    conn = self.conn
                batch: list[_Frame] = []
                while self.queue and len(batch) < 256:
                    f = self.queue.popleft()
                    self.queued_bytes -= len(f.data)
                    batch.append(f)
                if self.v0:
                    await self._write_v0(conn, batch)
                else:
                    await self._write_v1(conn, batch, streams, finishing)
                self.gossip._writer_progress()
        except Exception as exc:
            level = logging.DEBUG if isinstance(exc, IrohError) else logging.WARNING
            logger.log(level, "gossip: writer to %s ended: %r", self.id.fmt_short(), exc)
            self.gossip._conn_failed(self.id, conn)
        finally:
            if self.closing:
                await self._linger(conn, [*streams.values(), *finishing])

    async def _write_v1(
        self,
        conn: Connection,
        batch: list[_Frame],
        streams: dict[TopicId, SendStream],
        finishing: list[SendStream],
    ) -> None:
        # Coalesce consecutive frames of one topic into a single write.
        i = 0
        while i < len(batch):
            topic = batch[i].topic
            j = i
            parts: list[bytes] = []
            while j < len(batch) and batch[j].topic == topic:
                parts.append(batch[j].data)
                j += 1
                if batch[j - 1].last:
                    break
            stream = streams.get(topic)
            if stream is None:
                stream = await conn.open_uni()
                streams[topic] = stream
                parts.insert(0, (32).to_bytes(4, "big") + bytes(topic))
            await stream.write_all(b"".join(parts))
            if batch[j - 1].last:
                del streams[topic]
                await stream.finish()
                finishing.append(stream)
            i = j

    async def _write_v0(self, conn: Connection, batch: list[_Frame]) -> None:
        if self.v0_send is None:
            if conn.is_client:
                send, recv = await conn.open_bi()
                self.v0_send = send
                self.gossip._spawn(self.gossip._read_v0(self.id, conn, recv))
            else:
                await self.v0_ready.wait()
        assert self.v0_send is not None
        await self.v0_send.write_all(b"".join(f.data for f in batch))

    async def _linger(self, conn: Connection, streams: list[SendStream]) -> None:
        """After a DisconnectPeer: finish our streams and give them time to arrive."""
        with contextlib.suppress(IrohError, TimeoutError):
            async with asyncio.timeout(CLOSE_LINGER):
                for s in streams:
                    with contextlib.suppress(IrohError):
                        await s.finish()
                if self.v0_send is not None:
                    with contextlib.suppress(IrohError):
                        await self.v0_send.finish()
                    streams = [*streams, self.v0_send]
                # Until the peer acknowledged everything, or the connection is gone anyway.
                waits: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(asyncio.gather(*(s.stopped() for s in streams))),
                    asyncio.ensure_future(conn.closed()),
                ]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                    await asyncio.gather(*waits, return_exceptions=True)
        self.gossip._maybe_close(conn)


# -- topic handles ----------------------------------------------------------------------------


class _TopicState:
    def __init__(self) -> None:
        self.neighbors: dict[PublicKey, None] = {}
        self.joined = asyncio.Event()
        self.handles: set[GossipTopic] = set()


class GossipTopic:
    """A subscription to one topic: broadcast to it and iterate over its events.

    Close with :meth:`close` (or ``async with``); the topic is left when its last handle closes.
    """

    def __init__(self, gossip: Gossip, topic: TopicId, state: _TopicState, capacity: int) -> None:
        self._gossip = gossip
        self.id = topic
        self._state = state
        self._cap = capacity
        self._events: deque[Event] = deque()
        self._lagged = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._closed_event = asyncio.Event()

    # delivery from the actor

    def _push(self, event: Event) -> None:
        if self._closed:
            return
        if len(self._events) >= self._cap:
            self._lagged = True
            return
        if self._lagged:
            self._lagged = False
            self._events.append(Lagged())
            if len(self._events) >= self._cap:
                self._lagged = True
                return
        self._events.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _wake(self) -> None:
        if self._closed:
            self._closed_event.set()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # API

    @property
    def neighbors(self) -> list[PublicKey]:
        """Our current direct neighbors (HyParView active view) in this topic."""
        return list(self._state.neighbors)

    @property
    def is_joined(self) -> bool:
        return bool(self._state.neighbors)

    async def joined(self) -> None:
        """Wait until we have at least one neighbor in the topic.

        Raises :class:`TopicClosed` if the handle (or gossip) is closed meanwhile.
        """
        self._check()
        if self._state.joined.is_set():
            return
        waits = [
            asyncio.ensure_future(self._state.joined.wait()),
            asyncio.ensure_future(self._closed_event.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        self._check()

    async def broadcast(self, data: bytes) -> None:
        """Send ``data`` to every peer of the topic (deduplicated by content hash)."""
        await self._broadcast(data, neighbors_only=False)

    async def broadcast_neighbors(self, data: bytes) -> None:
        """Send ``data`` to our direct neighbors only."""
        await self._broadcast(data, neighbors_only=True)

    async def _broadcast(self, data: bytes, neighbors_only: bool) -> None:
        self._check()
        data = bytes(data)
        self._gossip._check_size(data)
        await self._gossip._wait_send_capacity()
        self._check()
        self._gossip._broadcast(self.id, data, neighbors_only)

    async def join_peers(self, peers: Iterable[PublicKey | EndpointAddr | EndpointTicket]) -> None:
        """Join through more peers."""
        self._check()
        self._gossip._join(self.id, peers)

    async def recv(self) -> Event:
        """The next event; raises :class:`TopicClosed` once closed."""
        while not self._events:
            if self._lagged:
                self._lagged = False
                return Lagged()
            self._check()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.recv()
            except TopicClosed:
                return

    def _check(self) -> None:
        if self._closed or self._gossip._closed:
            raise TopicClosed(f"topic {self.id.fmt_short()} is closed")

    async def close(self) -> None:
        """Drop this handle; the last one leaves the topic (Disconnect to the neighbors)."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        self._gossip._handle_closed(self)

    async def __aenter__(self) -> GossipTopic:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"GossipTopic({self.id.fmt_short()}, neighbors={len(self._state.neighbors)})"


# -- the actor --------------------------------------------------------------------------------


class Gossip:
    """Publish/subscribe on gossip topics over an endpoint (a Router protocol handler).

    Register it for :data:`GOSSIP_ALPN` (and :data:`~aioiroh.gossip.framing.ALPN_V0` with
    ``legacy_v0``) on a :class:`~aioiroh.Router`; it dials peers on its own.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        config: Config,
        *,
        legacy_v0: bool,
        event_capacity: int,
        relay_only: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.relay_only = relay_only
        self.config = config
        self.max_message_size = config.max_message_size
        self.legacy_v0 = legacy_v0
        self._event_capacity = event_capacity
        self._loop = asyncio.get_running_loop()
        self._me_data = self._our_peer_data()
        self.state: State[PublicKey] = State(endpoint.id, self._me_data, config)
        self._peers: dict[PublicKey, _Peer] = {}
        self._dials: dict[PublicKey, asyncio.Task[None]] = {}
        self._topics: dict[TopicId, _TopicState] = {}
        self._addrs: OrderedDict[PublicKey, EndpointAddr] = OrderedDict()
        self._v0_peers: set[PublicKey] = set()
        # Open streams the peer has towards us, per connection (see _maybe_close).
        self._inbound: dict[Connection, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.Task[None]] = set()
        self._capacity = asyncio.Event()
        self._capacity.set()
        self._closed = False
        self.stats = GossipStats()

    @classmethod
    async def spawn(
        cls,
        endpoint: Endpoint,
        *,
        config: Config | None = None,
        legacy_v0: bool = False,
        event_capacity: int = TOPIC_EVENT_CAP,
        relay_only: bool = False,
    ) -> Gossip:
        """Start gossip on ``endpoint``; register it on a Router to accept peers.

        ``config``: protocol parameters (Rust's defaults). ``legacy_v0``: also speak
        ``/iroh-gossip/0`` (Rust 0.35). ``event_capacity``: unread events per subscriber
        before it gets :class:`Lagged`. ``relay_only``: tell peers only our home relay (not our
        IP addresses) and dial peers through their relays when they have one.
        """
        return cls(
            endpoint,
            config or Config(),
            legacy_v0=legacy_v0,
            event_capacity=event_capacity,
            relay_only=relay_only,
        )

    @property
    def alpns(self) -> list[bytes]:
        """The ALPNs to route to this handler."""
        return [ALPN_V1, ALPN_V0] if self.legacy_v0 else [ALPN_V1]

    # -- public API ----------------------------------------------------------------------

    async def subscribe(
        self,
        topic_id: TopicId | bytes,
        bootstrap: Iterable[PublicKey | EndpointAddr | EndpointTicket] = (),
        *,
        capacity: int | None = None,
    ) -> GossipTopic:
        """Join ``topic_id`` through ``bootstrap`` peers and return a handle for it.

        Bootstrap peers given by id alone are found through the endpoint's address lookup.
        """
        if self._closed:
            raise TopicClosed("gossip is shut down")
        topic = TopicId(bytes(topic_id))
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _TopicState()
            self._refresh_peer_data()
            self._process(self.state.join(topic, [], self._now()))
        handle = GossipTopic(self, topic, state, capacity or self._event_capacity)
        state.handles.add(handle)
        for peer in state.neighbors:
            handle._push(NeighborUp(peer))
        self._join(topic, bootstrap)
        return handle

    async def accept(self, conn: Connection) -> None:
        """Router entry point for an incoming gossip connection."""
        if self._closed:
            conn.close(_DISCONNECT_CODE, b"gossip: shut down")
            return
        self._on_connection(conn.remote_id, conn)
        await conn.closed()

    async def shutdown(self) -> None:
        """Leave every topic (sending Disconnects), then stop all tasks and connections."""
        if self._closed:
            return
        for topic in list(self._topics):
            self._quit(topic)
        self._closed = True
        for handle in [h for s in self._topics.values() for h in s.handles]:
            handle._closed = True
            handle._wake()
        # Give the Disconnects a moment to leave.
        writers = list(self._writers)
        for p in self._peers.values():
            p.closing = True
            p.wake.set()
        if writers:
            await asyncio.wait(writers, timeout=CLOSE_LINGER)
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        tasks = [*self._tasks, *self._dials.values(), *writers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in self._peers.values():
            if p.conn is not None:
                p.conn.close(_DISCONNECT_CODE, b"gossip: shut down")
        self._peers.clear()

    async def __aenter__(self) -> Gossip:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- internals: inputs ---------------------------------------------------------------

    def _now(self) -> float:
        return self._loop.time()

    def _spawn(
        self, coro: Coroutine[Any, Any, None], *, writer: bool = False
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name="gossip-writer" if writer else "gossip")
        group = self._writers if writer else self._tasks
        group.add(task)
        task.add_done_callback(group.discard)
        return task

    def _our_peer_data(self) -> PeerData:
        addr = self.endpoint.addr()
        relay = next(iter(addr.relay_urls), None)
        direct = () if self.relay_only and relay is not None else tuple(addr.direct_addresses)
        return PeerData.from_addr_info(AddrInfo(relay, direct))

    def _refresh_peer_data(self) -> None:
        data = self._our_peer_data()
        if data != self._me_data:
            self._me_data = data
            self._process(self.state.update_peer_data(data, self._now()))

    def _join(
        self, topic: TopicId, peers: Iterable[PublicKey | EndpointAddr | EndpointTicket]
    ) -> None:
        ids: list[PublicKey] = []
        for p in peers:
            if isinstance(p, EndpointTicket):
                p = p.addr
            if isinstance(p, EndpointAddr):
                if p.direct_addresses or p.relay_urls:
                    self._remember_addr(p)
                p = p.id
            if p != self.endpoint.id:
                ids.append(p)
        if ids:
            self._process(self.state.join(topic, ids, self._now()))

    def _remember_addr(self, addr: EndpointAddr) -> None:
        self._addrs[addr.id] = addr
        self._addrs.move_to_end(addr.id)
        while len(self._addrs) > MAX_KNOWN_ADDRS:
            self._addrs.popitem(last=False)

    def _check_size(self, data: bytes) -> None:
        probe = GossipMsg(MessageId(bytes(32)), data, DeliveryScope(0xFFFF))
        size = len(encode_message(probe)) + (32 if self.legacy_v0 else 0)
        if size >= self.max_message_size:
            raise MessageTooLarge(
                f"message of {len(data)} bytes does not fit max_message_size "
                f"{self.max_message_size}"
            )

    async def _wait_send_capacity(self) -> None:
        """Backpressure for local broadcasts while some peer's queue is deep.

        A peer that does not drain for ``SLOW_PEER_TIMEOUT`` is dropped, so one stuck peer
        cannot stall the topic.
        """
        if self._capacity.is_set():
            return
        try:
            async with asyncio.timeout(SLOW_PEER_TIMEOUT):
                await self._capacity.wait()
        except TimeoutError:
            for p in list(self._peers.values()):
                if len(p.queue) > BROADCAST_HIGH_WATER // 2:
                    self._drop_slow(p, f"did not drain in {SLOW_PEER_TIMEOUT:g}s")
            self._capacity.set()

    def _writer_progress(self) -> None:
        if not self._capacity.is_set() and all(
            len(p.queue) <= BROADCAST_HIGH_WATER // 2 for p in self._peers.values()
        ):
            self._capacity.set()

    def _broadcast(self, topic: TopicId, data: bytes, neighbors_only: bool) -> None:
        self._process(self.state.broadcast(topic, data, self._now(), neighbors_only=neighbors_only))
        if any(len(p.queue) > BROADCAST_HIGH_WATER for p in self._peers.values()):
            self._capacity.clear()

    def _handle_closed(self, handle: GossipTopic) -> None:
        state = self._topics.get(handle.id)
        if state is None:
            return
        state.handles.discard(handle)
        if not state.handles and not self._closed:
            self._quit(handle.id)

    def _quit(self, topic: TopicId) -> None:
        self._process(self.state.quit(topic, self._now()))
        state = self._topics.pop(topic, None)
        if state is not None:
            for h in state.handles:
                h._closed = True
                h._wake()

    def _on_timer(self, handle_box: list[asyncio.TimerHandle], timer: Timer[PublicKey]) -> None:
        self._timers.discard(handle_box[0])
        if not self._closed:
            self._process(self.state.handle_timer(timer, self._now()))

    def _on_message(self, peer: PublicKey, topic: TopicId, msg: Message[PublicKey]) -> None:
        if not self._closed:
            self._process(self.state.handle_message(peer, topic, msg, self._now()))

    # -- internals: connections ------------------------------------------------------------

    def _on_connection(self, peer: PublicKey, conn: Connection) -> None:
        """A new connection (dialed or accepted): start reading, use it for sending."""
        v0 = conn.alpn == ALPN_V0
        if v0:
            self._v0_peers.add(peer)
        p = self._peers.get(peer)
        if p is None or p.closing:
            p = self._peers[peer] = _Peer(self, peer)
        old = p.conn
        p.attach(conn, v0)
        if old is not None and old is not conn:
            p.v0_send = None
            p.v0_ready.clear()
        if v0:
            if not conn.is_client:
                self._spawn(self._accept_v0(peer, p, conn))
        else:
            self._spawn(self._read_v1(peer, conn))
        self._spawn(self._watch(peer, conn))

    async def _watch(self, peer: PublicKey, conn: Connection) -> None:
        await conn.closed()
        self._inbound.pop(conn, None)
        self._conn_failed(peer, conn)

    def _maybe_close(self, conn: Connection) -> None:
        """Close a connection once neither side uses it (as Rust 0.35 does when both of its
        loops end): we sent our last frame on it and the peer ended all its streams to us."""
        if conn.close_reason() is not None or self._inbound.get(conn, 0) > 0:
            return
        if any(p.conn is conn for p in self._peers.values()):
            return
        self._inbound.pop(conn, None)
        conn.close(_DISCONNECT_CODE, b"gossip: disconnect")

    def _inbound_started(self, conn: Connection) -> None:
        self._inbound[conn] = self._inbound.get(conn, 0) + 1

    def _inbound_ended(self, conn: Connection) -> None:
        n = self._inbound.get(conn, 0) - 1
        if n > 0:
            self._inbound[conn] = n
        else:
            self._inbound[conn] = 0
            self._maybe_close(conn)

    def _conn_failed(self, peer: PublicKey, conn: Connection) -> None:
        p = self._peers.get(peer)
        if p is not None and p.conn is conn:
            del self._peers[peer]
            p.closing = True
            p.wake.set()
            conn.close(_DISCONNECT_CODE, b"gossip: connection failed")
            self._writer_progress()
            if not self._closed:
                self._process(self.state.handle_peer_disconnected(peer, self._now()))

    def _dial(self, peer: PublicKey) -> None:
        if peer in self._dials or self._closed:
            return
        self._dials[peer] = self._spawn(self._dial_task(peer))

    async def _dial_task(self, peer: PublicKey) -> None:
        target: PublicKey | EndpointAddr = self._addrs.get(peer) or peer
        if self.relay_only and isinstance(target, EndpointAddr) and target.relay_urls:
            target = EndpointAddr(peer, target.relay_urls[0], [])
        conn: Connection | None = None
        try:
            alpn = ALPN_V0 if peer in self._v0_peers else ALPN_V1
            try:
                conn = await self.endpoint.connect(target, alpn)
            except AlpnMismatchError:
                if not self.legacy_v0 or alpn == ALPN_V0:
                    raise
                self._v0_peers.add(peer)
                conn = await self.endpoint.connect(target, ALPN_V0)
        except IrohError as exc:
            logger.debug("gossip: dial %s failed: %s", peer.fmt_short(), exc)
        finally:
            if self._dials.get(peer) is asyncio.current_task():
                del self._dials[peer]
        if self._closed:
            if conn is not None:
                conn.close(_DISCONNECT_CODE, b"gossip: shut down")
            return
        p = self._peers.get(peer)
        if conn is None:
            if p is not None and p.conn is None:
                # Nothing was ever sent: the peer is unreachable.
                del self._peers[peer]
                self._process(self.state.handle_peer_disconnected(peer, self._now()))
            return
        if p is None:
            # Dropped while dialing (DisconnectPeer): nothing to send.
            conn.close(_DISCONNECT_CODE, b"gossip: not needed")
            return
        self._on_connection(peer, conn)

    async def _read_frames(
        self, recv: RecvStream, decoder: FrameDecoder
    ) -> AsyncGenerator[bytes, None]:
        while True:
            while (body := decoder.next_frame()) is not None:
                yield body
            chunk = await recv.read(READ_CHUNK)
            if not chunk:
                if not decoder.at_clean_end():
                    raise GossipError("stream ended inside a frame")
                return
            decoder.feed(chunk)

    async def _read_v1(self, peer: PublicKey, conn: Connection) -> None:
        streams: set[asyncio.Task[None]] = set()
        try:
            while True:
                recv = await conn.accept_uni()
                if len(streams) >= MAX_STREAMS_PER_CONN:
                    recv.stop(1)
                    continue
                task = self._spawn(self._read_v1_stream(peer, conn, recv))
                streams.add(task)
                task.add_done_callback(streams.discard)
        except IrohError:
            return

    async def _read_v1_stream(self, peer: PublicKey, conn: Connection, recv: RecvStream) -> None:
        decoder = FrameDecoder(self.max_message_size)
        frames = self._read_frames(recv, decoder)
        self._inbound_started(conn)
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):
                header = await anext(frames, None)
            if header is None:
                return
            topic = decode_stream_header(header)
            async for body in frames:
                self._on_message(peer, topic, decode_message(body))
        except (IrohError, TimeoutError) as exc:
            logger.debug("gossip: stream from %s dropped: %s", peer.fmt_short(), exc)
            recv.stop(1)
        finally:
            await frames.aclose()
            self._inbound_ended(conn)

    async def _accept_v0(self, peer: PublicKey, p: _Peer, conn: Connection) -> None:
        try:
            send, recv = await conn.accept_bi()
        except IrohError:
            return
        if p.conn is conn:
            p.v0_send = send
            p.v0_ready.set()
        await self._read_v0(peer, conn, recv)

    async def _read_v0(self, peer: PublicKey, conn: Connection, recv: RecvStream) -> None:
        decoder = FrameDecoder(self.max_message_size)
        frames = self._read_frames(recv, decoder)
        self._inbound_started(conn)
        try:
            async for body in frames:
                pm = decode_proto_message(body)
                self._on_message(peer, pm.topic, pm.message)
        except IrohError as exc:
            logger.debug("gossip: v0 stream from %s dropped: %s", peer.fmt_short(), exc)
            recv.stop(1)
        finally:
            await frames.aclose()
            self._inbound_ended(conn)

    # -- internals: outputs ----------------------------------------------------------------

    def _process(self, events: list[OutEvent[PublicKey]]) -> None:
        for ev in events:
            if isinstance(ev, SendMessage):
                self._send(ev.peer, ev.topic, ev.message)
            elif isinstance(ev, ScheduleTimer):
                box: list[asyncio.TimerHandle] = []
                handle = self._loop.call_later(ev.delay, self._on_timer, box, ev.timer)
                box.append(handle)
                self._timers.add(handle)
            elif isinstance(ev, EmitEvent):
                self._emit(ev.topic, ev.event)
            elif isinstance(ev, DisconnectPeer):
                p = self._peers.pop(ev.peer, None)
                if p is not None:
                    p.closing = True
                    p.wake.set()
                    self._writer_progress()
                    if p.writer is None and p.conn is None:
                        # Forget the dial at once: a send right after this starts a new one.
                        dial = self._dials.pop(ev.peer, None)
                        if dial is not None:
                            dial.cancel()
            elif isinstance(ev, PeerDataUpdate):
                try:
                    info = ev.data.addr_info()
                except IrohError:
                    continue
                if info.relay_url is not None or info.direct_addresses:
                    self._remember_addr(
                        EndpointAddr(ev.peer, info.relay_url, list(info.direct_addresses))
                    )

    def _send(self, peer: PublicKey, topic: TopicId, msg: Message[PublicKey]) -> None:
        if self._closed and not isinstance(msg, Disconnect):
            return
        p = self._peers.get(peer)
        if p is None:
            if self._closed:
                return
            p = self._peers[peer] = _Peer(self, peer)
        if not p.enqueue(topic, msg):
            self._drop_slow(p, "send queue full")
            return
        if p.conn is None:
            self._dial(peer)

    def _drop_slow(self, p: _Peer, why: str) -> None:
        """Give up on a peer that does not take our data: as if its connection failed."""
        logger.info("gossip: dropping %s: %s", p.id.fmt_short(), why)
        if self._peers.get(p.id) is p:
            del self._peers[p.id]
        p.closing = True
        p.queue.clear()
        p.queued_bytes = 0
        p.wake.set()
        if p.conn is not None:
            p.conn.close(_SLOW_PEER_CODE, b"gossip: too slow")
        self._writer_progress()
        if not self._closed:
            self._process(self.state.handle_peer_disconnected(p.id, self._now()))

    def _emit(
        self,
        topic: TopicId,
        event: Received[PublicKey] | NeighborUp[PublicKey] | NeighborDown[PublicKey],
    ) -> None:
        state = self._topics.get(topic)
        if state is None:
            return
        if isinstance(event, NeighborUp):
            state.neighbors[event.peer] = None
            state.joined.set()
        elif isinstance(event, NeighborDown):
            state.neighbors.pop(event.peer, None)
            if not state.neighbors:
                state.joined.clear()
        for h in state.handles:
            h._push(event)
