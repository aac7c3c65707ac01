"""Benchmark the Mainline DHT code in a local swarm on 127.0.0.1 (one event loop, one core).

Publish (BEP 44 put of a pkarr packet) and resolve (most recent get) latency p50/p99, packets
sent per lookup, and memory per routing-table entry. Bounded: ``--nodes`` (50) server nodes and
``--ops`` (50) publishes and resolves, well under a minute.

    .venv/bin/python bench/dht.py [--nodes 50] [--ops 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import tracemalloc

from aioiroh.address_lookup.dht import packet_to_item
from aioiroh.base.key import SecretKey
from aioiroh.dht.driver import Dht
from aioiroh.dht.routing import RoutingTable
from aioiroh.dns.endpoint_info import EndpointInfo
from aioiroh.dns.pkarr import SignedPacket

LOOPBACK = ("127.0.0.1", 0)


def _pct(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100)[p - 1] if len(samples) > 1 else samples[0]


def routing_entry_bytes(entries: int = 1000) -> float:
    """Heap bytes per routing-table entry (tracemalloc over a table of ``entries`` nodes)."""
    own = os.urandom(20)
    tracemalloc.start()
    table = RoutingTable(own)
    base = tracemalloc.get_traced_memory()[0]
    i = 0
    while len(table) < entries and i < 100 * entries:
        # Ids spread over the nearer buckets so the table can hold `entries` nodes.
        depth = 1 + i % 150
        flip = int.from_bytes(own, "big") ^ (1 << (160 - depth))
        node_id = (flip ^ (int.from_bytes(os.urandom(20), "big") >> depth)).to_bytes(20, "big")
        table.add(node_id, ("127.0.0.1", 1024 + i % 60000), 0.0)
        i += 1
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / max(len(table), 1)


async def main(nodes: int, ops: int) -> None:
    first = await Dht.create(bind=LOOPBACK, bootstrap=[], server_mode=True)
    swarm = [first]
    try:
        for _ in range(nodes - 1):
            swarm.append(
                await Dht.create(bind=LOOPBACK, bootstrap=[first.local_addr], server_mode=True)
            )
        t0 = time.perf_counter()
        await asyncio.gather(*(d.bootstrap() for d in swarm))
        await asyncio.gather(*(d.bootstrap() for d in swarm))
        boot_s = time.perf_counter() - t0
        boot = [d.local_addr for d in swarm[:3]]
        publisher = await Dht.create(bind=LOOPBACK, bootstrap=boot)
        resolver = await Dht.create(bind=LOOPBACK, bootstrap=boot)
        await publisher.bootstrap()
        await resolver.bootstrap()
        keys = [SecretKey.generate() for _ in range(ops)]
        publish_ms: list[float] = []
        stored_on: list[int] = []
        sent0 = publisher.packets_sent
        for key in keys:
            info = EndpointInfo(key.public(), direct_addresses=(("127.0.0.1", 1),))
            packet = SignedPacket.from_endpoint_info(info, key, timestamp=time.time_ns() // 1000)
            t = time.perf_counter()
            stored_on.append(await publisher.put_mutable(packet_to_item(packet)))
            publish_ms.append((time.perf_counter() - t) * 1000)
        publish_packets = (publisher.packets_sent - sent0) / ops
        resolve_ms: list[float] = []
        sent0 = resolver.packets_sent
        found = 0
        for key in keys:
            t = time.perf_counter()
            item = await resolver.get_mutable_most_recent(key.public().to_bytes())
            resolve_ms.append((time.perf_counter() - t) * 1000)
            found += item is not None
        resolve_packets = (resolver.packets_sent - sent0) / ops
        table_sizes = [len(d.rpc.routing) for d in swarm]
        await publisher.aclose()
        await resolver.aclose()
    finally:
        for d in swarm:
            await d.aclose()
    print(
        f"swarm: {nodes} nodes, bootstrap x2 in {boot_s:.2f} s, "
        f"routing table mean {statistics.mean(table_sizes):.1f} entries"
    )
    print(
        f"publish: p50 {_pct(publish_ms, 50):.2f} ms  p99 {_pct(publish_ms, 99):.2f} ms  "
        f"{publish_packets:.1f} packets/publish  stored on {statistics.mean(stored_on):.1f} nodes"
    )
    print(
        f"resolve: p50 {_pct(resolve_ms, 50):.2f} ms  p99 {_pct(resolve_ms, 99):.2f} ms  "
        f"{resolve_packets:.1f} packets/lookup  found {found}/{ops}"
    )
    print(f"routing table: {routing_entry_bytes():.0f} bytes per entry")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--ops", type=int, default=50)
    args = parser.parse_args()
    if not 2 <= args.nodes <= 500 or not 1 <= args.ops <= 1000:
        sys.exit("--nodes 2..500, --ops 1..1000")
    asyncio.run(main(args.nodes, args.ops))
