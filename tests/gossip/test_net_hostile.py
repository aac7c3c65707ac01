"""A misbehaving peer on the wire: oversized or garbage frames, stream floods, a peer that
never reads. Each is cut off without hurting the gossip instance."""

from __future__ import annotations

import asyncio
import struct

import pytest

from aioiroh import Connection, Endpoint, Router
from aioiroh.gossip import GOSSIP_ALPN, Gossip, NeighborDown, NeighborUp, Received, TopicId
from aioiroh.gossip import net as gossip_net
from aioiroh.gossip.framing import encode_stream_header, frame_message
from aioiroh.gossip.messages import Join

pytestmark = pytest.mark.timeout(60)

TOPIC = TopicId.from_name("hostile")


async def victim() -> tuple[Endpoint, Gossip, Router]:
    ep = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    g = await Gossip.spawn(ep)
    return ep, g, Router.builder(ep).accept(GOSSIP_ALPN, g).spawn()


async def attacker_conn(target: Endpoint) -> tuple[Endpoint, Connection]:
    ep = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    return ep, await ep.connect(target.addr(), GOSSIP_ALPN)


async def still_works(ep: Endpoint, g: Gossip) -> None:
    """A well-behaved peer can still join and exchange a message."""
    ep2 = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    g2 = await Gossip.spawn(ep2)
    r2 = Router.builder(ep2).accept(GOSSIP_ALPN, g2).spawn()
    try:
        ta = await g.subscribe(TOPIC)
        tb = await g2.subscribe(TOPIC, bootstrap=[ep.addr()])
        async with asyncio.timeout(10):
            await tb.joined()
            await tb.broadcast(b"ok")
            async for ev in ta:
                if isinstance(ev, Received):
                    assert ev.content == b"ok"
                    break
    finally:
        await r2.shutdown()


@pytest.mark.parametrize(
    "payload",
    [
        encode_stream_header(TOPIC) + struct.pack(">I", 0x7FFFFFFF) + b"x" * 100,
        encode_stream_header(TOPIC) + struct.pack(">I", 4097) + bytes(4097),
        encode_stream_header(TOPIC) + struct.pack(">I", 5) + b"\x07\x07\x07\x07\x07",
        struct.pack(">I", 31) + bytes(31),  # a header that is not 32 bytes
    ],
    ids=["huge-length", "just-over-limit", "garbage-body", "bad-header"],
)
async def test_bad_frames_get_the_stream_stopped(payload: bytes) -> None:
    ep, g, router = await victim()
    await g.subscribe(TOPIC)
    bad, conn = await attacker_conn(ep)
    try:
        send = await conn.open_uni()
        await send.write_all(payload)
        async with asyncio.timeout(10):
            assert await send.stopped() == 1
        assert g.state.topics[TOPIC].active == []
    finally:
        await bad.close()
    try:
        await still_works(ep, g)
    finally:
        await router.shutdown()


async def test_a_flood_of_streams_is_capped_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gossip_net, "MAX_STREAMS_PER_CONN", 8)
    ep, _g, router = await victim()
    bad, conn = await attacker_conn(ep)
    try:
        streams = []
        for _ in range(20):
            s = await conn.open_uni()
            await s.write_all(encode_stream_header(TOPIC))  # then idle forever
            streams.append(s)
        async with asyncio.timeout(10):
            codes = await asyncio.gather(*(s.stopped() for s in streams[8:]))
        assert codes == [1] * 12
    finally:
        await bad.close()
        await router.shutdown()


async def test_a_peer_that_never_reads_is_dropped_and_broadcasts_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gossip_net, "SLOW_PEER_TIMEOUT", 1.0)
    ep, g, router = await victim()
    topic = await g.subscribe(TOPIC)
    bad, conn = await attacker_conn(ep)
    try:
        # Join properly, then never accept the streams we are sent.
        s = await conn.open_uni()
        await s.write_all(encode_stream_header(TOPIC) + frame_message(Join(None)))
        async with asyncio.timeout(10):
            assert await topic.recv() == NeighborUp(bad.id)
        # The attacker's machine stops taking packets (no ACKs, no reads): our writer stalls
        # on congestion/flow control and the queue for it deepens.
        udp = bad._socket.udp4
        assert udp is not None
        udp._on_batch = lambda batch: None
        async with asyncio.timeout(40):
            for i in range(3000):
                await topic.broadcast(i.to_bytes(4, "big") + bytes(3000))
                if not g.state.topics[TOPIC].active:
                    break
        assert g.state.topics[TOPIC].active == []
        assert bad.id not in g._peers
        async with asyncio.timeout(10):
            assert await topic.recv() == NeighborDown(bad.id)
        queued = sum(len(p.queue) for p in g._peers.values())
        assert queued == 0
    finally:
        await bad.close()
        await router.shutdown()
