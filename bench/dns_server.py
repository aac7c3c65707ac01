"""Benchmark the DNS server on one core: DNS queries/s (UDP), pkarr PUTs/s, p99 latency.

Server and load generator share one event loop (one core). The client side is kept cheap
(pre-built query bytes on a raw UDP socket; pre-signed PUT bodies), so the numbers are a lower
bound on what the server alone sustains.

    .venv/bin/python bench/dns_server.py [--seconds 3] [--keys 200] [--window 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import dns.message
import dns.rdatatype

from aioiroh.base.key import SecretKey
from aioiroh.dns.endpoint_info import EndpointInfo, txt_name
from aioiroh.dns.pkarr import SignedPacket
from aioiroh.dns_server.config import DnsServerConfig
from aioiroh.dns_server.server import DnsServer

ORIGIN = "bench.iroh.invalid."


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else samples[0]


async def bench_dns(server: DnsServer, names: list[str], seconds: float, window: int) -> dict:
    loop = asyncio.get_running_loop()
    queries = []
    for i, name in enumerate(names):
        q = dns.message.make_query(name, dns.rdatatype.TXT)
        q.id = i % 65536
        queries.append(q.to_wire())
    pending: dict[int, float] = {}
    latencies: list[float] = []
    slot_free = asyncio.Event()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            qid = int.from_bytes(data[:2], "big")
            sent = pending.pop(qid, None)
            if sent is not None:
                latencies.append(time.perf_counter() - sent)
                slot_free.set()

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=server.dns_addr)
    start = time.perf_counter()
    i = 0
    try:
        while time.perf_counter() - start < seconds:
            while len(pending) < window:
                wire = queries[i % len(queries)]
                qid = i % 65536
                wire = qid.to_bytes(2, "big") + wire[2:]
                pending[qid] = time.perf_counter()
                transport.sendto(wire)
                i += 1
            slot_free.clear()
            try:
                await asyncio.wait_for(slot_free.wait(), 1.0)
            except TimeoutError:
                pending.clear()  # lost datagrams: count as unanswered
    finally:
        elapsed = time.perf_counter() - start
        transport.close()
    return {"qps": len(latencies) / elapsed, "p99_ms": _p99(latencies) * 1e3, "n": len(latencies)}


async def bench_puts(server: DnsServer, keys: list[SecretKey], seconds: float, window: int) -> dict:
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=window)) as session:

        async def worker(offset: int) -> None:
            j = offset
            while time.perf_counter() < deadline:
                sk = keys[j % len(keys)]
                info = EndpointInfo(sk.public(), (f"https://relay{j}.example./",))
                packet = SignedPacket.from_endpoint_info(
                    info, sk, timestamp=time.time_ns() // 1000 + j
                )
                t0 = time.perf_counter()
                async with session.put(
                    f"{server.pkarr_url}/{sk.public().to_z32()}", data=packet.to_relay_body()
                ) as resp:
                    await resp.read()
                    if resp.status in (204, 409):
                        latencies.append(time.perf_counter() - t0)
                j += window

        await asyncio.gather(*(worker(k) for k in range(window)))
    elapsed = time.perf_counter() - start
    return {"puts": len(latencies) / elapsed, "p99_ms": _p99(latencies) * 1e3, "n": len(latencies)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--window", type=int, default=32, help="requests in flight")
    args = ap.parse_args()
    keys = [SecretKey.generate() for _ in range(args.keys)]
    with tempfile.TemporaryDirectory() as tmp:
        config = DnsServerConfig(
            origins=(ORIGIN,),
            http_port=0,
            dns_port=0,
            store_path=Path(tmp) / "bench.sqlite",
            put_rate=None,
        )
        async with DnsServer(config) as server:
            puts = await bench_puts(server, keys, args.seconds, min(args.window, 16))
            names = [txt_name(sk.public(), ORIGIN) for sk in keys]
            queries = await bench_dns(server, names, args.seconds, args.window)
    print(f"{'metric':<22}{'rate/s':>12}{'p99 ms':>10}{'samples':>10}")
    q = queries
    print(f"{'DNS UDP queries':<22}{q['qps']:>12.0f}{q['p99_ms']:>10.2f}{q['n']:>10}")
    print(f"{'pkarr PUTs (signed)':<22}{puts['puts']:>12.0f}{puts['p99_ms']:>10.2f}{puts['n']:>10}")
    print("(one event loop for server and client; PUT rate includes client-side signing)")


if __name__ == "__main__":
    asyncio.run(main())
