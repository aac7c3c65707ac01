"""A virtual-time network of sans-I/O gossip peers (ints as peer ids), for the swarm tests.

Links have a fixed per-pair latency so each direction is FIFO, as a QUIC stream is. A
``DisconnectPeer`` output closes the link: the other side learns of it (``PeerDisconnected``)
after the messages already in flight. Messages to a dead peer fail the "dial": the sender gets
``PeerDisconnected`` after a dial timeout.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aioiroh.gossip.messages import TopicId
from aioiroh.gossip.proto import (
    Config,
    DisconnectPeer,
    EmitEvent,
    NeighborDown,
    NeighborUp,
    OutEvent,
    Received,
    ScheduleTimer,
    SendMessage,
    State,
)

DIAL_TIMEOUT = 0.3


@dataclass
class Stats:
    messages: int = 0
    received: dict[int, dict[bytes, int]] = field(default_factory=dict)


class SimNetwork:
    def __init__(self, seed: int = 0, config: Config | None = None) -> None:
        self.rng = random.Random(seed)
        self.config = config or Config()
        self.now = 0.0
        self.peers: dict[int, State[int]] = {}
        self.dead: set[int] = set()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._latency: dict[tuple[int, int], float] = {}
        # Open links and their generation: a close notice for an older generation is stale
        # (Rust ignores the end of a connection that a newer one replaced).
        self.links: dict[frozenset[int], int] = {}
        self._gen: dict[frozenset[int], int] = {}
        self.stats = Stats()
        self.on_step: Callable[[int], None] | None = None

    def latency(self, a: int, b: int) -> float:
        key = (min(a, b), max(a, b))
        lat = self._latency.get(key)
        if lat is None:
            lat = self._latency[key] = self.rng.uniform(0.005, 0.040)
        return lat

    def at(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (self.now + delay, next(self._seq), fn))

    def add_peer(self, pid: int) -> State[int]:
        state: State[int] = State(pid, None, self.config, random.Random(self.rng.getrandbits(64)))
        self.peers[pid] = state
        self.stats.received[pid] = {}
        return state

    def kill(self, pid: int) -> None:
        """The peer vanishes: its links break, the other ends notice after the latency."""
        self.dead.add(pid)
        for link in [lk for lk in self.links if pid in lk]:
            gen = self.links.pop(link)
            (other,) = link - {pid}
            self.at(self.latency(pid, other), lambda o=other, g=gen: self._closed(o, pid, g))

    def _closed(self, pid: int, peer: int, gen: int) -> None:
        link = frozenset((pid, peer))
        if link in self.links or self._gen.get(link) != gen:
            return  # replaced by a newer connection
        self._disconnected(pid, peer)

    def _disconnected(self, pid: int, peer: int) -> None:
        if pid not in self.dead:
            self.process(pid, self.peers[pid].handle_peer_disconnected(peer, self.now))

    def process(self, pid: int, events: list[OutEvent[int]]) -> None:
        for ev in events:
            if isinstance(ev, SendMessage):
                self._send(pid, ev)
            elif isinstance(ev, ScheduleTimer):
                timer = ev.timer
                self.at(ev.delay, lambda t=timer, p=pid: self._timer(p, t))
            elif isinstance(ev, DisconnectPeer):
                link = frozenset((pid, ev.peer))
                if link in self.links:
                    gen = self.links.pop(link)
                    peer = ev.peer
                    self.at(self.latency(pid, peer), lambda p=peer, g=gen: self._closed(p, pid, g))
            elif isinstance(ev, EmitEvent):
                e = ev.event
                if isinstance(e, Received):
                    got = self.stats.received[pid]
                    got[e.content] = got.get(e.content, 0) + 1
                elif isinstance(e, NeighborUp | NeighborDown):
                    pass
        if self.on_step is not None:
            self.on_step(pid)

    def _timer(self, pid: int, timer: object) -> None:
        if pid not in self.dead:
            self.process(pid, self.peers[pid].handle_timer(timer, self.now))  # type: ignore[arg-type]

    def _send(self, pid: int, ev: SendMessage[int]) -> None:
        self.stats.messages += 1
        to = ev.peer
        if to in self.dead or to not in self.peers:
            self.at(DIAL_TIMEOUT, lambda: self._disconnected(pid, to))
            return
        link = frozenset((pid, to))
        if link not in self.links:
            self._gen[link] = self.links[link] = self._gen.get(link, 0) + 1

        def deliver() -> None:
            if to not in self.dead and pid not in self.dead:
                self.process(to, self.peers[to].handle_message(pid, ev.topic, ev.message, self.now))

        self.at(self.latency(pid, to), deliver)

    def join(self, pid: int, topic: TopicId, bootstrap: list[int]) -> None:
        self.process(pid, self.peers[pid].join(topic, bootstrap, self.now))

    def broadcast(self, pid: int, topic: TopicId, content: bytes) -> None:
        self.stats.received[pid][content] = self.stats.received[pid].get(content, 0) + 1
        self.process(pid, self.peers[pid].broadcast(topic, content, self.now))

    def run_until(self, t: float) -> None:
        while self._heap and self._heap[0][0] <= t:
            when, _, fn = heapq.heappop(self._heap)
            self.now = when
            fn()
        self.now = t
