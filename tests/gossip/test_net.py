"""Gossip over real aioiroh endpoints on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from aioiroh import Endpoint, Router
from aioiroh.address_lookup.memory import MemoryLookup
from aioiroh.base.key import PublicKey
from aioiroh.dns.endpoint_info import EndpointInfo
from aioiroh.gossip import (
    GOSSIP_ALPN,
    Gossip,
    GossipTopic,
    Lagged,
    MessageTooLarge,
    NeighborDown,
    NeighborUp,
    Received,
    TopicClosed,
    TopicId,
)

pytestmark = pytest.mark.timeout(60)

TOPIC = TopicId.from_name("net-test")


class Node:
    def __init__(self, endpoint: Endpoint, gossip: Gossip, router: Router) -> None:
        self.endpoint = endpoint
        self.gossip = gossip
        self.router = router

    @property
    def id(self) -> PublicKey:
        return self.endpoint.id


async def spawn_node(**kwargs: object) -> Node:
    ep = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False, **kwargs)  # type: ignore[arg-type]
    gossip = await Gossip.spawn(ep)
    router = Router.builder(ep).accept(GOSSIP_ALPN, gossip).spawn()
    return Node(ep, gossip, router)


@asynccontextmanager
async def nodes(n: int) -> AsyncIterator[list[Node]]:
    out: list[Node] = []
    try:
        for _ in range(n):
            out.append(await spawn_node())
        yield out
    finally:
        await asyncio.gather(*(node.router.shutdown() for node in out))


async def next_received(topic: GossipTopic) -> Received[PublicKey]:
    while True:
        ev = await topic.recv()
        if isinstance(ev, Received):
            return ev


async def test_three_peers_exchange_broadcasts_and_see_neighbors() -> None:
    async with nodes(3) as (a, b, c):
        ta = await a.gossip.subscribe(TOPIC)
        tb = await b.gossip.subscribe(TOPIC, bootstrap=[a.endpoint.addr()])
        tc = await c.gossip.subscribe(TOPIC, bootstrap=[b.endpoint.addr()])
        async with asyncio.timeout(10):
            await asyncio.gather(ta.joined(), tb.joined(), tc.joined())
        await tc.broadcast(b"from c")
        async with asyncio.timeout(10):
            ra, rb = await asyncio.gather(next_received(ta), next_received(tb))
        assert ra.content == rb.content == b"from c"
        assert rb.delivered_from == c.id
        assert ra.delivered_from in (b.id, c.id)
        await ta.broadcast(b"from a")
        async with asyncio.timeout(10):
            rc = await next_received(tc)
        assert rc.content == b"from a"
        assert ra.scope.round is not None


async def test_bootstrap_by_id_uses_the_endpoint_address_lookup() -> None:
    a = await spawn_node()
    lookup = MemoryLookup([EndpointInfo(a.id, direct_addresses=tuple(a.endpoint.bound_sockets()))])
    b = await spawn_node(address_lookup=[lookup])
    try:
        ta = await a.gossip.subscribe(TOPIC)
        tb = await b.gossip.subscribe(TOPIC, bootstrap=[a.id])
        async with asyncio.timeout(10):
            await tb.joined()
            ev = await ta.recv()
        assert ev == NeighborUp(b.id)
        assert tb.neighbors == [a.id]
    finally:
        await asyncio.gather(a.router.shutdown(), b.router.shutdown())


async def test_neighbor_down_when_a_peer_leaves_the_topic() -> None:
    async with nodes(2) as (a, b):
        ta = await a.gossip.subscribe(TOPIC)
        tb = await b.gossip.subscribe(TOPIC, bootstrap=[a.endpoint.addr()])
        async with asyncio.timeout(10):
            await asyncio.gather(ta.joined(), tb.joined())
            assert await ta.recv() == NeighborUp(b.id)
            await tb.close()
            assert await ta.recv() == NeighborDown(b.id)
        with pytest.raises(TopicClosed):
            await tb.broadcast(b"x")


async def test_broadcast_neighbors_reaches_direct_neighbors_only() -> None:
    async with nodes(3) as (a, b, c):
        ta = await a.gossip.subscribe(TOPIC)
        tb = await b.gossip.subscribe(TOPIC, bootstrap=[a.endpoint.addr()])
        async with asyncio.timeout(10):
            await asyncio.gather(ta.joined(), tb.joined())
        await tb.broadcast_neighbors(b"hi neighbors")
        async with asyncio.timeout(10):
            ev = await next_received(ta)
        assert ev.content == b"hi neighbors"
        assert ev.scope.is_neighbors
        del c


async def test_a_slow_subscriber_gets_lagged_and_memory_stays_bounded() -> None:
    async with nodes(2) as (a, b):
        ta = await a.gossip.subscribe(TOPIC, capacity=8)
        tb = await b.gossip.subscribe(TOPIC, bootstrap=[a.endpoint.addr()])
        async with asyncio.timeout(10):
            await asyncio.gather(ta.joined(), tb.joined())
        for i in range(50):
            await tb.broadcast(f"m{i}".encode())
        # Wait (without reading a) until b's last message is in a's cache.
        async with asyncio.timeout(10):
            while len(a.gossip.state.topics[TOPIC].gossip.cache) < 50:
                await asyncio.sleep(0.01)
        assert len(ta._events) <= 8
        events = [await ta.recv() for _ in range(9)]
        assert any(isinstance(e, Lagged) for e in events)


async def test_oversized_broadcast_is_refused() -> None:
    async with nodes(1) as (a,):
        ta = await a.gossip.subscribe(TOPIC)
        await ta.broadcast(bytes(4000))
        with pytest.raises(MessageTooLarge):
            await ta.broadcast(bytes(4096))


async def test_joined_raises_when_the_topic_closes_while_waiting() -> None:
    async with nodes(1) as (a,):
        ta = await a.gossip.subscribe(TOPIC)
        waiter = asyncio.create_task(ta.joined())
        await asyncio.sleep(0)
        await ta.close()
        with pytest.raises(TopicClosed):
            await asyncio.wait_for(waiter, 5)
        assert TOPIC not in a.gossip.state.topics  # the last handle left the topic


async def test_two_handles_share_a_topic_and_the_second_sees_existing_neighbors() -> None:
    async with nodes(2) as (a, b):
        ta = await a.gossip.subscribe(TOPIC)
        await b.gossip.subscribe(TOPIC, bootstrap=[a.endpoint.addr()])
        async with asyncio.timeout(10):
            await ta.joined()
        ta2 = await a.gossip.subscribe(TOPIC)
        assert await ta2.recv() == NeighborUp(b.id)
        await ta.close()
        assert TOPIC in a.gossip.state.topics  # still subscribed through ta2
        await ta2.close()
        assert TOPIC not in a.gossip.state.topics


async def test_connections_close_once_both_sides_are_done_with_them() -> None:
    async with nodes(2) as (a, b):
        ta = await a.gossip.subscribe(TOPIC)
        tb = await b.gossip.subscribe(TOPIC, bootstrap=[a.endpoint.addr()])
        async with asyncio.timeout(10):
            await asyncio.gather(ta.joined(), tb.joined())
        conns = list(a.endpoint._connections) + list(b.endpoint._connections)
        assert conns
        await tb.close()  # Disconnect to a; a drops b too
        async with asyncio.timeout(10):
            await asyncio.gather(*(c.closed() for c in conns))
        assert not a.gossip._peers and not b.gossip._peers
