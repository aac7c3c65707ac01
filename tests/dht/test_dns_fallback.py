"""``dns-server --dht``: keys missing locally are answered from the DHT, cached, never stored."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from aioiroh import SecretKey
from aioiroh.address_lookup.dht import DhtAddressLookup
from aioiroh.address_lookup.dns import DnsAddressLookup
from aioiroh.dns.endpoint_info import EndpointInfo
from aioiroh.dns_server.server import DnsServer

from ..support.dns import TEST_ORIGIN, dns_server_config
from .swarm import local_swarm

pytestmark = pytest.mark.timeout(60)


async def test_dns_answers_from_the_dht_and_caches(tmp_path: Path) -> None:
    async with local_swarm(6, 0) as swarm:
        key = SecretKey.generate()
        info = EndpointInfo(key.public(), direct_addresses=(("127.0.0.1", 9),))
        publisher = DhtAddressLookup(
            key, bootstrap=swarm.bootstrap_list(), bind=("127.0.0.1", 0), relay_only=False
        )
        try:
            publisher.publish(info)
            await asyncio.wait_for(publisher.wait_published(), 20)
        finally:
            await publisher.aclose()
        config = dns_server_config(
            tmp_path, dht_fallback=True, dht_bootstrap=tuple(swarm.bootstrap_list())
        )
        async with DnsServer(config) as server:
            assert server.dht_fallback is not None
            resolver = DnsAddressLookup(TEST_ORIGIN, server.dns_addr, stagger=())
            try:
                assert await resolver.lookup(key.public()) == info
                assert await resolver.lookup(key.public()) == info
            finally:
                await resolver.aclose()
            stats = server.dht_fallback.stats
            assert stats["found"] == 1 and stats["hit"] >= 1
            # Never stored, so the pkarr relay API does not serve it.
            assert len(server.store) == 0
            url = f"{server.pkarr_url}/{key.public().to_z32()}"
            async with aiohttp.ClientSession() as http, http.get(url) as resp:
                assert resp.status == 404
            # No put ever left the server's DHT node.
            node = await server.dht_fallback._lookup.node()
            assert node.rpc.stats["queries_sent"] > 0
            assert node.rpc.server_mode is False


async def test_dns_fallback_is_off_by_default(tmp_path: Path) -> None:
    async with DnsServer(dns_server_config(tmp_path)) as server:
        assert server.dht_fallback is None


async def test_cli_dns_server_dht_flag(tmp_path: Path) -> None:
    async with local_swarm(3, 0) as swarm:
        boot = swarm.bootstrap_list()[0]
        before = swarm.ours[0].rpc.stats["queries_received"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aioiroh.cli.main",
            "dns-server",
            "--port",
            "0",
            "--db",
            ":memory:",
            "--json",
            "--dht",
            "--dht-bootstrap",
            f"{boot[0]}:{boot[1]}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert json.loads(line)["event"] == "serving"
            # The server's DHT node bootstrapped from ours.
            assert swarm.ours[0].rpc.stats["queries_received"] > before
        finally:
            proc.terminate()
            await proc.wait()


async def test_fallback_cache_is_bounded_and_misses_are_cached() -> None:
    from aioiroh.dns_server.dht_fallback import DhtFallback

    async with local_swarm(3, 0) as swarm:
        fallback = DhtFallback(bootstrap=swarm.bootstrap_list(), bind=("127.0.0.1", 0), max_cache=3)
        await fallback.start()
        try:
            keys = [SecretKey.generate().public() for _ in range(5)]
            for key in keys:
                assert await fallback.get(key) is None
            assert len(fallback) == 3
            assert await fallback.get(keys[-1]) is None  # remembered miss, no new lookup
            assert fallback.stats["not_found"] == 5 and fallback.stats["hit"] == 1
            # Concurrent queries for one key share a single lookup.
            fresh = SecretKey.generate().public()
            await asyncio.gather(*(fallback.get(fresh) for _ in range(10)))
            assert fallback.stats["not_found"] == 6
        finally:
            await fallback.aclose()
