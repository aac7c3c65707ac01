"""The iroh-gossip protocol as a sans-I/O state machine: HyParView membership + Plumtree broadcast.

Feed :class:`State` events (``handle_*`` methods, each with the current time in seconds) and
drain its output list of :class:`SendMessage`, :class:`ScheduleTimer`, :class:`DisconnectPeer`,
:class:`EmitEvent` and :class:`PeerDataUpdate`. Timers come back through
:meth:`State.handle_timer`. Each topic is an independent swarm (:class:`TopicState`).

Follows Rust ``iroh_gossip::proto`` (defaults included); where Rust grows state with what peers
send (message cache, seen ids, IHave bookkeeping, peer data), this version also caps the size.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Generic, TypeAlias, TypeVar

from .messages import (
    DEFAULT_MAX_MESSAGE_SIZE,
    IHAVE_MAX_SIZE,
    MIN_MAX_MESSAGE_SIZE,
    DeliveryScope,
    Disconnect,
    ForwardJoin,
    Gossip,
    GossipError,
    Graft,
    IHave,
    IHaveMsg,
    Join,
    Message,
    MessageId,
    Neighbor,
    PeerData,
    PeerInfo,
    Priority,
    Prune,
    Shuffle,
    ShuffleReply,
    TopicId,
)

__all__ = [
    "Config",
    "DisconnectPeer",
    "EmitEvent",
    "HyparviewConfig",
    "NeighborDown",
    "NeighborUp",
    "OutEvent",
    "PeerDataUpdate",
    "PlumtreeConfig",
    "Received",
    "ScheduleTimer",
    "SendMessage",
    "State",
    "TopicState",
]

PI = TypeVar("PI", bound=Hashable)

# Postcard overhead of a ProtoMessage around a plumtree message, minus its own discriminant
# (32-byte topic + the Swarm/Gossip tag), as Rust computes it for IHave batching.
_PROTO_HEADER: Final = 33


@dataclass(slots=True)
class HyparviewConfig:
    """HyParView parameters; defaults from Rust (the paper's, p. 9)."""

    active_view_capacity: int = 5
    passive_view_capacity: int = 30
    active_random_walk_length: int = 6
    passive_random_walk_length: int = 3
    shuffle_random_walk_length: int = 6
    shuffle_active_view_count: int = 3
    shuffle_passive_view_count: int = 4
    shuffle_interval: float = 60.0
    neighbor_request_timeout: float = 0.5


@dataclass(slots=True)
class PlumtreeConfig:
    """Plumtree parameters; defaults from Rust."""

    graft_timeout_1: float = 0.080
    graft_timeout_2: float = 0.040
    dispatch_timeout: float = 0.005
    optimization_threshold: int = 7
    message_cache_retention: float = 30.0
    message_id_retention: float = 90.0
    cache_evict_interval: float = 1.0
    # Caps (not in Rust) so a flooding peer cannot grow memory without bound.
    max_cached_bytes: int = 16 * 1024 * 1024
    max_seen_ids: int = 200_000
    max_missing: int = 4096


@dataclass(slots=True)
class Config:
    membership: HyparviewConfig = field(default_factory=HyparviewConfig)
    broadcast: PlumtreeConfig = field(default_factory=PlumtreeConfig)
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeighborUp(Generic[PI]):
    """A peer joined our active view for the topic."""

    peer: PI


@dataclass(frozen=True, slots=True)
class NeighborDown(Generic[PI]):
    """A peer left our active view for the topic."""

    peer: PI


@dataclass(frozen=True, slots=True)
class Received(Generic[PI]):
    """A broadcast message. ``delivered_from`` is the previous hop, not the author."""

    content: bytes
    delivered_from: PI
    scope: DeliveryScope


Event: TypeAlias = NeighborUp[PI] | NeighborDown[PI] | Received[PI]


@dataclass(frozen=True, slots=True)
class SendMessage(Generic[PI]):
    peer: PI
    topic: TopicId
    message: Message[PI]


@dataclass(frozen=True, slots=True)
class ScheduleTimer(Generic[PI]):
    """Call :meth:`State.handle_timer` with ``timer`` after ``delay`` seconds."""

    delay: float
    timer: Timer[PI]


@dataclass(frozen=True, slots=True)
class DisconnectPeer(Generic[PI]):
    """No topic needs the connection to ``peer`` any more."""

    peer: PI


@dataclass(frozen=True, slots=True)
class EmitEvent(Generic[PI]):
    topic: TopicId
    event: Event[PI]


@dataclass(frozen=True, slots=True)
class PeerDataUpdate(Generic[PI]):
    """New :class:`PeerData` (addresses) learned for ``peer``."""

    peer: PI
    data: PeerData


OutEvent: TypeAlias = (
    SendMessage[PI] | ScheduleTimer[PI] | DisconnectPeer[PI] | EmitEvent[PI] | PeerDataUpdate[PI]
)


@dataclass(frozen=True, slots=True)
class Timer(Generic[PI]):
    """An opaque timer: ``kind`` plus an optional peer or message id."""

    topic: TopicId
    kind: str
    arg: object = None


# Timer kinds.
_DO_SHUFFLE: Final = "shuffle"
_PENDING_NEIGHBOR: Final = "neighbor"
_SEND_GRAFT: Final = "graft"
_DISPATCH_LAZY: Final = "lazy"
_EVICT_CACHE: Final = "evict"


class _TopicOut(Generic[PI]):
    """Collects one topic's output (messages, timers, events) for the outer State."""

    __slots__ = ("events", "topic")

    def __init__(self, topic: TopicId) -> None:
        self.topic = topic
        self.events: list[OutEvent[PI]] = []

    def send(self, peer: PI, message: Message[PI]) -> None:
        self.events.append(SendMessage(peer, self.topic, message))

    def timer(self, delay: float, kind: str, arg: object = None) -> None:
        self.events.append(ScheduleTimer(delay, Timer(self.topic, kind, arg)))

    def emit(self, event: Event[PI]) -> None:
        self.events.append(EmitEvent(self.topic, event))

    def disconnect(self, peer: PI) -> None:
        self.events.append(DisconnectPeer(peer))

    def peer_data(self, peer: PI, data: PeerData) -> None:
        self.events.append(PeerDataUpdate(peer, data))


class _IndexSet(Generic[PI]):
    """An insertion-ordered set with random picks (dict keys; deterministic with a seed)."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict[PI, None] = {}

    def __contains__(self, x: object) -> bool:
        return x in self._d

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self) -> Iterator[PI]:
        return iter(list(self._d))

    def add(self, x: PI) -> bool:
        if x in self._d:
            return False
        self._d[x] = None
        return True

    def discard(self, x: PI) -> bool:
        return self._d.pop(x, 0) is None

    def pick(self, rng: random.Random, without: Iterable[PI] = ()) -> PI | None:
        skip = set(without)
        items = [x for x in self._d if x not in skip]
        return rng.choice(items) if items else None

    def sample(self, rng: random.Random, n: int, without: Iterable[PI] = ()) -> list[PI]:
        skip = set(without)
        items = [x for x in self._d if x not in skip]
        rng.shuffle(items)
        return items[:n]

    def items(self) -> list[PI]:
        return list(self._d)


# -- HyParView -------------------------------------------------------------------------------

_RANDOM: Final = "random"
_CLOSED: Final = "closed"
_DISCONNECT_RECEIVED: Final = "disconnect"


class Hyparview(Generic[PI]):
    """The membership layer of one topic (Rust ``proto::hyparview::State``)."""

    def __init__(
        self, me: PI, me_data: PeerData | None, config: HyparviewConfig, rng: random.Random
    ) -> None:
        self.me = me
        self.me_data = me_data
        self.config = config
        self.rng = rng
        self.active: _IndexSet[PI] = _IndexSet()
        self.passive: _IndexSet[PI] = _IndexSet()
        self.pending_neighbor: set[PI] = set()
        self.peer_data: dict[PI, PeerData] = {}
        self.alive_disconnect: set[PI] = set()
        self._shuffle_scheduled = False

    def _after(self, io: _TopicOut[PI]) -> None:
        if not self._shuffle_scheduled:
            self._shuffle_scheduled = True
            io.timer(self.config.shuffle_interval, _DO_SHUFFLE)
        self._trim_peer_data()

    def _trim_peer_data(self) -> None:
        # Rust keeps data of every peer ever heard of; keep it to the views (plus slack).
        cap = 4 * (self.config.active_view_capacity + self.config.passive_view_capacity)
        if len(self.peer_data) > cap:
            keep = set(self.active.items()) | set(self.passive.items()) | self.pending_neighbor
            self.peer_data = {k: v for k, v in self.peer_data.items() if k in keep}

    # inputs

    def request_join(self, peer: PI, io: _TopicOut[PI]) -> None:
        if peer != self.me:
            io.send(peer, Join(self.me_data))
        self._after(io)

    def update_peer_data(self, data: PeerData, io: _TopicOut[PI]) -> None:
        self.me_data = data
        self._after(io)

    def quit(self, io: _TopicOut[PI]) -> None:
        for peer in self.active:
            self.active.discard(peer)
            self._send_disconnect(peer, False, io)
        self._after(io)

    def timer(self, kind: str, arg: object, io: _TopicOut[PI]) -> None:
        if kind == _DO_SHUFFLE:
            self._on_shuffle_timer(io)
        elif kind == _PENDING_NEIGHBOR:
            peer: PI = arg  # type: ignore[assignment]
            if peer in self.pending_neighbor:
                self.pending_neighbor.discard(peer)
                self.passive.discard(peer)
                self._refill(io, ())
        self._after(io)

    def peer_disconnected(self, peer: PI, io: _TopicOut[PI]) -> None:
        self.pending_neighbor.discard(peer)
        if peer in self.active:
            self._remove_active(peer, _CLOSED, False, io)
        elif peer in self.alive_disconnect:
            self.alive_disconnect.discard(peer)
        else:
            self.passive.discard(peer)
            self.peer_data.pop(peer, None)
        self._after(io)

    def recv(self, sender: PI, msg: Message[PI], io: _TopicOut[PI]) -> None:
        is_disconnect = isinstance(msg, Disconnect)
        if isinstance(msg, Join):
            self._on_join(sender, msg.data, io)
        elif isinstance(msg, ForwardJoin):
            self._on_forward_join(sender, msg, io)
        elif isinstance(msg, Shuffle):
            self._on_shuffle(sender, msg, io)
        elif isinstance(msg, ShuffleReply):
            for node in msg.nodes:
                self._add_passive(node.id, node.data, io)
            self._refill(io, ())
        elif isinstance(msg, Neighbor):
            is_reply = sender in self.pending_neighbor
            self.pending_neighbor.discard(sender)
            if not self._add_active(sender, msg.data, msg.priority, not is_reply, io):
                self._send_disconnect(sender, True, io)
        elif isinstance(msg, Disconnect):
            self.pending_neighbor.discard(sender)
            if sender in self.active:
                self._remove_active(sender, _DISCONNECT_RECEIVED, msg.alive, io)
            elif msg.alive and sender in self.passive:
                self.alive_disconnect.add(sender)
        # Peers outside the active view only talk to us briefly (joins, shuffles).
        if not is_disconnect and sender not in self.active:
            io.disconnect(sender)
        self._after(io)

    # handlers

    def _on_join(self, peer: PI, data: PeerData | None, io: _TopicOut[PI]) -> None:
        self._add_active(peer, data, Priority.HIGH, True, io)
        info = PeerInfo(peer, data)
        for node in self.active:
            if node != peer:
                io.send(node, ForwardJoin(info, self.config.active_random_walk_length))

    def _on_forward_join(self, sender: PI, msg: ForwardJoin[PI], io: _TopicOut[PI]) -> None:
        peer = msg.peer.id
        if peer == self.me:
            return
        if peer in self.active:
            self._insert_peer_info(msg.peer, io)
            self._send_neighbor(peer, Priority.HIGH, io)
        elif msg.ttl == 0 or len(self.active) <= 1:
            # As in Rust: ask first, add to the active view when the peer answers.
            self._insert_peer_info(msg.peer, io)
            self._send_neighbor(peer, Priority.HIGH, io)
        else:
            if msg.ttl == self.config.passive_random_walk_length:
                self._add_passive(peer, msg.peer.data, io)
            if peer not in self.active and peer not in self.pending_neighbor:
                nxt = self.active.pick(self.rng, (sender,))
                if nxt is not None:
                    io.send(nxt, ForwardJoin(msg.peer, max(msg.ttl - 1, 0)))

    def _on_shuffle(self, sender: PI, msg: Shuffle[PI], io: _TopicOut[PI]) -> None:
        if msg.origin == self.me:
            return
        if msg.ttl == 0 or len(self.active) <= 1:
            for node in msg.nodes:
                self._add_passive(node.id, node.data, io)
            self._send_shuffle_reply(msg.origin, len(msg.nodes), io)
        else:
            nxt = self.active.pick(self.rng, (msg.origin, sender))
            if nxt is not None:
                io.send(nxt, Shuffle(msg.origin, msg.nodes, max(msg.ttl - 1, 0)))

    def _send_shuffle_reply(self, to: PI, n: int, io: _TopicOut[PI]) -> None:
        nodes = self.passive.sample(self.rng, n)
        if len(nodes) < n:
            nodes += self.active.sample(self.rng, n - len(nodes))
        io.send(to, ShuffleReply(tuple(self._peer_info(p) for p in nodes if p != to)))

    def _on_shuffle_timer(self, io: _TopicOut[PI]) -> None:
        node = self.active.pick(self.rng)
        if node is not None:
            active = self.active.sample(self.rng, self.config.shuffle_active_view_count, (node,))
            passive = self.passive.sample(self.rng, self.config.shuffle_passive_view_count, (node,))
            nodes = [self._peer_info(p) for p in active + passive]
            nodes.append(PeerInfo(self.me, self.me_data))
            io.send(node, Shuffle(self.me, tuple(nodes), self.config.shuffle_random_walk_length))
        io.timer(self.config.shuffle_interval, _DO_SHUFFLE)

    # views

    def _peer_info(self, peer: PI) -> PeerInfo[PI]:
        return PeerInfo(peer, self.peer_data.get(peer))

    def _insert_peer_info(self, info: PeerInfo[PI], io: _TopicOut[PI]) -> None:
        if info.data is None:
            return
        old = self.peer_data.get(info.id)
        if old != info.data and info.data.data:
            io.peer_data(info.id, info.data)
        self.peer_data[info.id] = info.data

    def _add_passive(self, peer: PI, data: PeerData | None, io: _TopicOut[PI]) -> None:
        self._insert_peer_info(PeerInfo(peer, data), io)
        if peer in self.active or peer in self.passive or peer == self.me:
            return
        if len(self.passive) >= self.config.passive_view_capacity:
            victim = self.passive.pick(self.rng)
            if victim is not None:
                self.passive.discard(victim)
        self.passive.add(peer)

    def _remove_active(self, peer: PI, reason: str, alive: bool, io: _TopicOut[PI]) -> None:
        if self._remove_active_unchecked(peer, reason, alive, io):
            self._refill(io, (peer,))

    def _remove_active_unchecked(
        self, peer: PI, reason: str, alive: bool, io: _TopicOut[PI]
    ) -> bool:
        if not self.active.discard(peer):
            return False
        # Rust leaves the peer "pending" here when we had answered its Neighbor; that stale
        # entry then blocks refilling the active view forever (a node can end up isolated).
        self.pending_neighbor.discard(peer)
        io.emit(NeighborDown(peer))
        if reason == _RANDOM:
            self._send_disconnect(peer, True, io)
        else:
            io.disconnect(peer)
        if reason == _CLOSED:
            keep = peer in self.alive_disconnect
            self.alive_disconnect.discard(peer)
        elif reason == _DISCONNECT_RECEIVED:
            keep = alive
        else:
            keep = True
        if keep:
            self._add_passive(peer, self.peer_data.get(peer), io)
            if reason != _CLOSED:
                self.alive_disconnect.add(peer)
        return True

    def _refill(self, io: _TopicOut[PI], skip: Iterable[PI]) -> None:
        cap = self.config.active_view_capacity
        waiting = sum(1 for p in self.pending_neighbor if p not in self.active)
        if len(self.active) + waiting >= cap:
            return
        node = self.passive.pick(self.rng, [*skip, *self.pending_neighbor])
        if node is not None:
            prio = Priority.HIGH if not len(self.active) else Priority.LOW
            self._send_neighbor(node, prio, io)
            io.timer(self.config.neighbor_request_timeout, _PENDING_NEIGHBOR, node)

    def _add_active(
        self, peer: PI, data: PeerData | None, prio: Priority, reply: bool, io: _TopicOut[PI]
    ) -> bool:
        if peer == self.me:
            return False
        self._insert_peer_info(PeerInfo(peer, data), io)
        if peer in self.active:
            if reply:
                self._send_neighbor(peer, prio, io)
            return True
        full = len(self.active) >= self.config.active_view_capacity
        if prio is Priority.LOW and full:
            return False
        if full:
            victim = self.active.pick(self.rng)
            if victim is not None:
                self._remove_active_unchecked(victim, _RANDOM, True, io)
        self.passive.discard(peer)
        if self.active.add(peer):
            io.emit(NeighborUp(peer))
            if reply:
                self._send_neighbor(peer, prio, io)
        return True

    def _send_neighbor(self, peer: PI, prio: Priority, io: _TopicOut[PI]) -> None:
        if peer not in self.pending_neighbor:
            self.pending_neighbor.add(peer)
            io.send(peer, Neighbor(prio, self.me_data))

    def _send_disconnect(self, peer: PI, alive: bool, io: _TopicOut[PI]) -> None:
        # Hand over some peers first so the other side is not left stranded.
        n = self.config.shuffle_active_view_count + self.config.shuffle_passive_view_count
        self._send_shuffle_reply(peer, n, io)
        io.send(peer, Disconnect(alive))
        io.disconnect(peer)


# -- Plumtree --------------------------------------------------------------------------------


class _TimeBoundCache(Generic[PI]):
    """id -> value with an expiry; expiries are inserted in time order (fixed retention)."""

    __slots__ = ("_d", "_order")

    def __init__(self) -> None:
        self._d: dict[MessageId, tuple[float, object]] = {}
        self._order: deque[tuple[float, MessageId]] = deque()

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: MessageId) -> object | None:
        entry = self._d.get(key)
        return None if entry is None else entry[1]

    def insert(self, key: MessageId, value: object, expires: float) -> None:
        self._d[key] = (expires, value)
        self._order.append((expires, key))

    def expire_until(self, now: float) -> list[object]:
        gone: list[object] = []
        while self._order and self._order[0][0] <= now:
            self._pop_oldest(gone)
        return gone

    def _pop_oldest(self, gone: list[object]) -> None:
        exp, key = self._order.popleft()
        entry = self._d.get(key)
        if entry is not None and entry[0] == exp:
            del self._d[key]
            gone.append(entry[1])

    def evict_oldest(self) -> object | None:
        gone: list[object] = []
        while self._order and not gone:
            self._pop_oldest(gone)
        return gone[0] if gone else None


class Plumtree(Generic[PI]):
    """The broadcast layer of one topic (Rust ``proto::plumtree::State``)."""

    def __init__(self, me: PI, config: PlumtreeConfig, max_payload: int) -> None:
        self.me = me
        self.config = config
        self.eager: dict[PI, None] = {}
        self.lazy: dict[PI, None] = {}
        self.lazy_queue: dict[PI, list[IHave]] = {}
        self.missing: dict[MessageId, deque[tuple[PI, int]]] = {}
        self.received: _TimeBoundCache[PI] = _TimeBoundCache()
        self.cache: _TimeBoundCache[PI] = _TimeBoundCache()
        self.cached_bytes = 0
        self.graft_scheduled: set[MessageId] = set()
        self.dispatch_scheduled = False
        self.init = False
        self.ihave_chunk = max(1, (max_payload - 3) // IHAVE_MAX_SIZE)
        self.max_hop = 0

    def _start(self, now: float, io: _TopicOut[PI]) -> None:
        if not self.init:
            self.init = True
            self._evict(now, io)

    def broadcast(
        self, content: bytes, neighbors_only: bool, now: float, io: _TopicOut[PI]
    ) -> None:
        self._start(now, io)
        mid = MessageId.from_content(content)
        msg = Gossip(mid, content, DeliveryScope(None if neighbors_only else 0))
        if not neighbors_only:
            self._remember(msg, now)
            self._lazy_push(msg, self.me, io)
        self._eager_push(msg, self.me, io)

    def _remember(self, msg: Gossip, now: float) -> None:
        cfg = self.config
        self.received.insert(msg.id, None, now + cfg.message_id_retention)
        while len(self.received) > cfg.max_seen_ids:
            self.received.evict_oldest()
        self.cache.insert(msg.id, msg, now + cfg.message_cache_retention)
        self.cached_bytes += len(msg.content)
        while self.cached_bytes > cfg.max_cached_bytes:
            old = self.cache.evict_oldest()
            if not isinstance(old, Gossip):
                break
            self.cached_bytes -= len(old.content)

    def recv(self, sender: PI, msg: Message[PI], now: float, io: _TopicOut[PI]) -> None:
        self._start(now, io)
        if isinstance(msg, Gossip):
            self._on_gossip(sender, msg, now, io)
        elif isinstance(msg, Prune):
            self._add_lazy(sender)
        elif isinstance(msg, IHaveMsg):
            self._on_ihave(sender, msg.ihaves, io)
        elif isinstance(msg, Graft):
            self._add_eager(sender)
            if msg.id is not None:
                cached = self.cache.get(msg.id)
                if isinstance(cached, Gossip):
                    io.send(sender, cached)

    def timer(self, kind: str, arg: object, now: float, io: _TopicOut[PI]) -> None:
        self._start(now, io)
        if kind == _DISPATCH_LAZY:
            self.dispatch_scheduled = False
            queue, self.lazy_queue = self.lazy_queue, {}
            for peer, ihaves in queue.items():
                for i in range(0, len(ihaves), self.ihave_chunk):
                    io.send(peer, IHaveMsg(tuple(ihaves[i : i + self.ihave_chunk])))
        elif kind == _SEND_GRAFT:
            assert isinstance(arg, MessageId)
            self._on_graft_timer(arg, io)
        elif kind == _EVICT_CACHE:
            self._evict(now, io)

    def neighbor_up(self, peer: PI) -> None:
        self._add_eager(peer)

    def neighbor_down(self, peer: PI) -> None:
        for mid in list(self.missing):
            q = self.missing[mid]
            kept = deque(e for e in q if e[0] != peer)
            if kept:
                self.missing[mid] = kept
            else:
                del self.missing[mid]
        self.eager.pop(peer, None)
        self.lazy.pop(peer, None)
        self.lazy_queue.pop(peer, None)

    def _evict(self, now: float, io: _TopicOut[PI]) -> None:
        for old in self.cache.expire_until(now):
            if isinstance(old, Gossip):
                self.cached_bytes -= len(old.content)
        self.received.expire_until(now)
        io.timer(self.config.cache_evict_interval, _EVICT_CACHE)

    def _on_gossip(self, sender: PI, msg: Gossip, now: float, io: _TopicOut[PI]) -> None:
        if not msg.validate():
            return  # a spoofed id: drop, as Rust does
        if msg.id in self.received:
            self._add_lazy(sender)
            io.send(sender, Prune())
            return
        if msg.scope.round is not None:
            prev = msg.scope.round
            fwd = Gossip(msg.id, msg.content, DeliveryScope(min(prev + 1, 0xFFFF)))
            self._remember(fwd, now)
            self._eager_push(fwd, sender, io)
            self._lazy_push(fwd, sender, io)
            self.graft_scheduled.discard(msg.id)
            previous = self.missing.pop(msg.id, None)
            if previous:
                self._optimize(sender, fwd, previous, io)
            self.max_hop = max(self.max_hop, prev)
        io.emit(Received(msg.content, sender, msg.scope))

    def _optimize(
        self, sender: PI, msg: Gossip, previous: deque[tuple[PI, int]], io: _TopicOut[PI]
    ) -> None:
        rnd = msg.scope.round
        assert rnd is not None
        peer, best = min(previous, key=lambda e: e[1])
        if best < rnd and rnd - best >= self.config.optimization_threshold:
            if peer not in self.eager:
                self._add_eager(peer)
                io.send(peer, Graft(None, best))
            self._add_lazy(sender)
            io.send(sender, Prune())

    def _on_ihave(self, sender: PI, ihaves: Iterable[IHave], io: _TopicOut[PI]) -> None:
        for ihave in ihaves:
            if ihave.id in self.received:
                continue
            q = self.missing.get(ihave.id)
            if q is None:
                if len(self.missing) >= self.config.max_missing:
                    continue
                q = self.missing[ihave.id] = deque()
            if len(q) < 16:  # more announcers than this add nothing
                q.append((sender, ihave.round))
            if ihave.id not in self.graft_scheduled:
                self.graft_scheduled.add(ihave.id)
                io.timer(self.config.graft_timeout_1, _SEND_GRAFT, ihave.id)

    def _on_graft_timer(self, mid: MessageId, io: _TopicOut[PI]) -> None:
        self.graft_scheduled.discard(mid)
        if mid in self.received:
            self.missing.pop(mid, None)
            return
        q = self.missing.get(mid)
        if not q:
            self.missing.pop(mid, None)
            return
        peer, rnd = q.popleft()
        if not q:
            del self.missing[mid]
        self._add_eager(peer)
        io.send(peer, Graft(mid, rnd))
        if mid in self.missing:
            self.graft_scheduled.add(mid)
        # Rust re-arms unconditionally; with nobody left to ask that timer is a no-op.
        io.timer(self.config.graft_timeout_2, _SEND_GRAFT, mid)

    def _add_eager(self, peer: PI) -> None:
        self.lazy.pop(peer, None)
        self.eager[peer] = None

    def _add_lazy(self, peer: PI) -> None:
        self.eager.pop(peer, None)
        self.lazy[peer] = None

    def _eager_push(self, msg: Gossip, sender: PI, io: _TopicOut[PI]) -> None:
        for peer in self.eager:
            if peer != self.me and peer != sender:
                io.send(peer, msg)

    def _lazy_push(self, msg: Gossip, sender: PI, io: _TopicOut[PI]) -> None:
        rnd = msg.scope.round
        if rnd is None:
            return
        for peer in self.lazy:
            if peer != sender:
                self.lazy_queue.setdefault(peer, []).append(IHave(msg.id, rnd))
        if not self.dispatch_scheduled:
            self.dispatch_scheduled = True
            io.timer(self.config.dispatch_timeout, _DISPATCH_LAZY)


# -- topic and node state --------------------------------------------------------------------


class TopicState(Generic[PI]):
    """HyParView + Plumtree for one topic (Rust ``proto::topic::State``)."""

    def __init__(
        self, me: PI, me_data: PeerData | None, config: Config, rng: random.Random
    ) -> None:
        if config.max_message_size < MIN_MAX_MESSAGE_SIZE:
            raise GossipError(f"max_message_size must be at least {MIN_MAX_MESSAGE_SIZE}")
        self.swarm: Hyparview[PI] = Hyparview(me, me_data, config.membership, rng)
        self.gossip: Plumtree[PI] = Plumtree(
            me, config.broadcast, config.max_message_size - _PROTO_HEADER
        )

    @property
    def active(self) -> list[PI]:
        return self.swarm.active.items()

    @property
    def passive(self) -> list[PI]:
        return self.swarm.passive.items()

    def _forward_membership(self, io: _TopicOut[PI], start: int) -> None:
        # Plumtree follows HyParView's neighbor changes.
        for ev in io.events[start:]:
            if isinstance(ev, EmitEvent):
                if isinstance(ev.event, NeighborUp):
                    self.gossip.neighbor_up(ev.event.peer)
                elif isinstance(ev.event, NeighborDown):
                    self.gossip.neighbor_down(ev.event.peer)


class State(Generic[PI]):
    """The protocol state of one node across topics (Rust ``proto::state::State``).

    Every ``handle_*`` call returns the output events it produced.
    """

    def __init__(
        self,
        me: PI,
        me_data: PeerData | None = None,
        config: Config | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.me = me
        self.me_data = me_data
        self.config = config or Config()
        self.rng = rng or random.Random()
        self.topics: dict[TopicId, TopicState[PI]] = {}
        # Which topics use the connection to a peer; the connection closes when none does.
        self.peer_topics: dict[PI, set[TopicId]] = {}

    def _topic(self, topic: TopicId) -> TopicState[PI]:
        state = self.topics.get(topic)
        if state is None:
            rng = random.Random(self.rng.getrandbits(64))
            state = self.topics[topic] = TopicState(self.me, self.me_data, self.config, rng)
        return state

    def _finish(self, state: TopicState[PI], io: _TopicOut[PI], out: list[OutEvent[PI]]) -> None:
        state._forward_membership(io, 0)
        for ev in io.events:
            if isinstance(ev, DisconnectPeer):
                topics = self.peer_topics.get(ev.peer)
                if topics is None:
                    continue
                topics.discard(io.topic)
                if not topics:
                    del self.peer_topics[ev.peer]
                    out.append(ev)
            else:
                out.append(ev)

    def join(self, topic: TopicId, peers: Iterable[PI], now: float) -> list[OutEvent[PI]]:
        """Join ``topic`` (creating its state) through ``peers`` (may be empty)."""
        state = self._topic(topic)
        io: _TopicOut[PI] = _TopicOut(topic)
        state.gossip._start(now, io)
        for peer in peers:
            state.swarm.request_join(peer, io)
        state.swarm._after(io)
        out: list[OutEvent[PI]] = []
        self._finish(state, io, out)
        return out

    def broadcast(
        self, topic: TopicId, content: bytes, now: float, *, neighbors_only: bool = False
    ) -> list[OutEvent[PI]]:
        state = self.topics.get(topic)
        if state is None:
            return []
        io: _TopicOut[PI] = _TopicOut(topic)
        state.gossip.broadcast(bytes(content), neighbors_only, now, io)
        out: list[OutEvent[PI]] = []
        self._finish(state, io, out)
        return out

    def quit(self, topic: TopicId, now: float) -> list[OutEvent[PI]]:
        """Leave ``topic``: Disconnect to every neighbor, then drop the topic's state."""
        state = self.topics.get(topic)
        if state is None:
            return []
        io: _TopicOut[PI] = _TopicOut(topic)
        state.swarm.quit(io)
        out: list[OutEvent[PI]] = []
        self._finish(state, io, out)
        del self.topics[topic]
        return out

    def handle_message(
        self, sender: PI, topic: TopicId, msg: Message[PI], now: float
    ) -> list[OutEvent[PI]]:
        """A message from ``sender``; messages for topics we did not join are dropped."""
        state = self.topics.get(topic)
        if state is None:
            return []
        self.peer_topics.setdefault(sender, set()).add(topic)
        io: _TopicOut[PI] = _TopicOut(topic)
        if isinstance(msg, Gossip | Prune | Graft | IHaveMsg):
            state.gossip.recv(sender, msg, now, io)
        else:
            state.swarm.recv(sender, msg, io)
        out: list[OutEvent[PI]] = []
        self._finish(state, io, out)
        return out

    def handle_timer(self, timer: Timer[PI], now: float) -> list[OutEvent[PI]]:
        state = self.topics.get(timer.topic)
        if state is None:
            return []
        io: _TopicOut[PI] = _TopicOut(timer.topic)
        if timer.kind in (_DO_SHUFFLE, _PENDING_NEIGHBOR):
            state.swarm.timer(timer.kind, timer.arg, io)
        else:
            state.gossip.timer(timer.kind, timer.arg, now, io)
        out: list[OutEvent[PI]] = []
        self._finish(state, io, out)
        return out

    def handle_peer_disconnected(self, peer: PI, now: float) -> list[OutEvent[PI]]:
        """The connection to ``peer`` is gone (closed, failed dial)."""
        self.peer_topics.pop(peer, None)
        out: list[OutEvent[PI]] = []
        for topic, state in list(self.topics.items()):
            io: _TopicOut[PI] = _TopicOut(topic)
            state.swarm.peer_disconnected(peer, io)
            state.gossip.neighbor_down(peer)
            self._finish(state, io, out)
        return out

    def update_peer_data(self, data: PeerData, now: float) -> list[OutEvent[PI]]:
        self.me_data = data
        out: list[OutEvent[PI]] = []
        for topic, state in self.topics.items():
            io: _TopicOut[PI] = _TopicOut(topic)
            state.swarm.update_peer_data(data, io)
            self._finish(state, io, out)
        return out
