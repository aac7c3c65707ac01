"""Benchmark iroh-gossip on a loopback swarm of aioiroh endpoints (one process, one loop).

Reports messages/s delivered to the apps, p50/p99 delivery latency (broadcast call to the
``Received`` event at each peer), and gossip frame bytes per delivered message, split into
payload (Plumtree eager push: 1 copy per delivery is ideal) and control (IHave/Graft/Prune
and HyParView). Bounded by ``--messages`` and ``--seconds``.

    .venv/bin/python bench/gossip.py [--peers 30] [--messages 1000] [--senders 5] [--size 64]
                                     [--rate MSGS_PER_S]  (0, the default: one burst)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import struct
import time

from aioiroh import Endpoint, Router
from aioiroh.gossip import GOSSIP_ALPN, Gossip, GossipTopic, Received, TopicId

TOPIC = TopicId.from_name("bench")
_STAMP = struct.Struct(">dI")


def _pct(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100)[q - 1]


async def run(
    peers: int, messages: int, senders: int, size: int, seconds: float, rate: float
) -> dict:
    rng = random.Random(1)
    eps: list[Endpoint] = []
    gossips: list[Gossip] = []
    routers: list[Router] = []
    topics: list[GossipTopic] = []
    latencies: list[float] = []
    delivered = 0
    all_done = asyncio.Event()
    expected = messages * (peers - 1)
    consumers: list[asyncio.Task[None]] = []

    async def consume(topic: GossipTopic) -> None:
        nonlocal delivered
        async for ev in topic:
            if isinstance(ev, Received):
                sent, _ = _STAMP.unpack_from(ev.content)
                latencies.append(time.perf_counter() - sent)
                delivered += 1
                if delivered >= expected:
                    all_done.set()

    try:
        for _ in range(peers):
            ep = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
            g = await Gossip.spawn(ep)
            eps.append(ep)
            gossips.append(g)
            routers.append(Router.builder(ep).accept(GOSSIP_ALPN, g).spawn())
        for i, g in enumerate(gossips):
            boot = [eps[j].addr() for j in rng.sample(range(i), min(i, 2))]
            topics.append(await g.subscribe(TOPIC, bootstrap=boot))
        async with asyncio.timeout(30):
            await asyncio.gather(*(t.joined() for t in topics))
        await asyncio.sleep(1.0)  # let the joins' random walks settle
        consumers = [asyncio.create_task(consume(t)) for t in topics]
        for g in gossips:
            g.stats.__init__()  # type: ignore[misc]  # count the burst only

        chosen = rng.sample(topics, senders)
        pad = bytes(max(0, size - _STAMP.size))

        async def burst(idx: int, topic: GossipTopic) -> None:
            for n, j in enumerate(range(idx, messages, senders)):
                if rate:
                    # Paced: each sender gets rate/senders messages per second.
                    delay = start + n * senders / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await topic.broadcast(_STAMP.pack(time.perf_counter(), j) + pad)

        start = time.perf_counter()
        try:
            async with asyncio.timeout(seconds):
                await asyncio.gather(*(burst(i, t) for i, t in enumerate(chosen)))
                await all_done.wait()
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - start
    finally:
        for c in consumers:
            c.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        await asyncio.gather(*(r.shutdown() for r in routers), return_exceptions=True)
    data_b = sum(g.stats.data_bytes for g in gossips)
    data_f = sum(g.stats.data_frames for g in gossips)
    ctrl_b = sum(g.stats.control_bytes for g in gossips)
    return {
        "peers": peers,
        "messages": messages,
        "rate": rate or "burst",
        "size": size,
        "delivered": delivered,
        "expected": expected,
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(delivered / elapsed, 1),
        "messages_per_s": round(delivered / (peers - 1) / elapsed, 1),
        "p50_ms": round(_pct(latencies, 50) * 1000, 2),
        "p99_ms": round(_pct(latencies, 99) * 1000, 2),
        "payload_copies_per_delivery": round(data_f / max(delivered, 1), 3),
        "payload_bytes_per_delivery": round(data_b / max(delivered, 1), 1),
        "control_bytes_per_delivery": round(ctrl_b / max(delivered, 1), 1),
        "wire_bytes_per_delivery": round((data_b + ctrl_b) / max(delivered, 1), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peers", type=int, default=30)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--senders", type=int, default=5)
    ap.add_argument("--size", type=int, default=64, help="payload bytes per message")
    ap.add_argument("--seconds", type=float, default=40.0, help="cap on the burst phase")
    ap.add_argument("--rate", type=float, default=0.0, help="messages/s in total; 0 = burst")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(
        run(args.peers, args.messages, args.senders, args.size, args.seconds, args.rate)
    )
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>28}: {v}")


if __name__ == "__main__":
    main()
