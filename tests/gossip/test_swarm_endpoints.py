"""30 aioiroh endpoints on loopback in one topic, a third reachable through our relay only."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from aioiroh import Endpoint, EndpointAddr, RelayMode, Router
from aioiroh.gossip import GOSSIP_ALPN, Gossip, GossipTopic, Lagged, Received, TopicId
from aioiroh.relay_server import RelayServer

TOPIC = TopicId.from_name("swarm-30")
N = 30
RELAY_ONLY = 10
MESSAGES = 1000
SENDERS = 10


class Peer:
    def __init__(self, ep: Endpoint, gossip: Gossip, router: Router, relay_only: bool) -> None:
        self.ep = ep
        self.gossip = gossip
        self.router = router
        self.relay_only = relay_only
        self.topic: GossipTopic | None = None
        self.got: Counter[bytes] = Counter()
        self.lagged = 0
        self.done = asyncio.Event()
        self.expected = 0

    def addr(self) -> EndpointAddr:
        if self.relay_only:
            assert self.ep.home_relay is not None
            return EndpointAddr(self.ep.id, self.ep.home_relay, [])
        return self.ep.addr()

    async def consume(self) -> None:
        assert self.topic is not None
        async for ev in self.topic:
            if isinstance(ev, Received):
                self.got[ev.content] += 1
                if len(self.got) >= self.expected:
                    self.done.set()
            elif isinstance(ev, Lagged):
                self.lagged += 1


async def start_peer(relay_url: str, relay_only: bool) -> Peer:
    ep = await Endpoint.bind(
        bind_addr="127.0.0.1:0",
        bind_addr_v6=False,
        relay_mode=RelayMode.custom([relay_url]),
        # Relay-only peers must not upgrade their relayed connections to direct paths.
        nat_traversal=not relay_only,
    )
    await asyncio.wait_for(ep.online(), 15)
    gossip = await Gossip.spawn(ep, relay_only=relay_only)
    router = Router.builder(ep).accept(GOSSIP_ALPN, gossip).spawn()
    return Peer(ep, gossip, router, relay_only)


@pytest.mark.timeout(240)
async def test_thirty_endpoints_deliver_a_burst_of_a_thousand_messages_once_each(
    relay_server: RelayServer,
) -> None:
    rng = random.Random(5)
    peers: list[Peer] = []
    consumers: list[asyncio.Task[None]] = []
    try:
        peers = list(
            await asyncio.gather(
                *(start_peer(relay_server.http_url, i >= N - RELAY_ONLY) for i in range(N))
            )
        )
        rng.shuffle(peers)
        for i, p in enumerate(peers):
            boot = [q.addr() for q in rng.sample(peers[:i], min(i, 2))]
            p.topic = await p.gossip.subscribe(TOPIC, bootstrap=boot)
            p.expected = MESSAGES
            consumers.append(asyncio.create_task(p.consume()))
        async with asyncio.timeout(60):
            await asyncio.gather(*(p.topic.joined() for p in peers if p.topic is not None))
        # Let membership settle (joins still walking) before the burst.
        await asyncio.sleep(1.0)

        senders = rng.sample(peers, SENDERS)
        per_sender = MESSAGES // SENDERS

        async def burst(idx: int, p: Peer) -> None:
            assert p.topic is not None
            for j in range(per_sender):
                content = f"{idx:02d}:{j:04d}:".encode() + bytes(48)
                p.got[content] += 1  # the app knows its own messages
                await p.topic.broadcast(content)

        async with asyncio.timeout(150):
            await asyncio.gather(*(burst(i, p) for i, p in enumerate(senders)))
            for p in peers:
                if len(p.got) >= MESSAGES:
                    p.done.set()
            await asyncio.gather(*(p.done.wait() for p in peers))

        for p in peers:
            assert len(p.got) == MESSAGES
            dups = {c: n for c, n in p.got.items() if n != 1}
            assert dups == {}, f"{p.ep.id.fmt_short()} got duplicates"
            assert p.lagged == 0
        # Some links really go through the relay.
        relayed = [
            path
            for p in peers
            if p.relay_only
            for conn in list(p.ep._connections)
            for path in conn.paths()
            if path.is_selected and path.is_relay
        ]
        assert relayed
        for p in peers:
            assert p.topic is not None
            assert 1 <= len(p.topic.neighbors) <= 5
    finally:
        for t in consumers:
            t.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        await asyncio.gather(*(p.router.shutdown() for p in peers), return_exceptions=True)
