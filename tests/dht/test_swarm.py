"""Our own nodes over real loopback UDP: hostile and malformed input, rollbacks, rate limits."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from aioiroh import SecretKey
from aioiroh.address_lookup.base import AddressLookupError
from aioiroh.address_lookup.dht import DhtAddressLookup, packet_to_item
from aioiroh.dht import bencode
from aioiroh.dht.driver import Dht
from aioiroh.dht.rpc import DhtError, MutableItem, Rpc
from aioiroh.dns.endpoint_info import EndpointInfo
from aioiroh.dns.pkarr import SignedPacket
from aioiroh.dns_server.server import DnsServer

from .swarm import local_swarm

pytestmark = pytest.mark.timeout(60)
LOOPBACK = ("127.0.0.1", 0)


async def test_item_with_a_forged_signature_is_dropped_and_counted() -> None:
    async with local_swarm(6, 0) as swarm:
        key = SecretKey.generate()
        good = MutableItem.sign(key, 5, b"good")
        async with await Dht.create(bind=LOOPBACK, bootstrap=swarm.bootstrap_list()) as client:
            assert await client.put_mutable(good) >= 1
            # A hostile node serves a newer item whose signature does not verify.
            liar = await Dht.create(
                bind=LOOPBACK, bootstrap=swarm.bootstrap_list(), server_mode=True
            )
            swarm.ours.append(liar)
            await liar.bootstrap()
            forged = MutableItem(good.public_key, 99, b"evil", bytes(64))
            liar.rpc._store_unchecked(forged, time.monotonic())
            await client.bootstrap()
            best = await client.get_mutable_most_recent(good.public_key)
            assert best == good
            assert client.rpc.stats["bad_items"] == 1


async def test_resolve_refuses_a_seq_rollback() -> None:
    key = SecretKey.generate()
    info = EndpointInfo(key.public(), direct_addresses=(("127.0.0.1", 7),))
    old = SignedPacket.from_endpoint_info(info, key, timestamp=1_000)
    new = SignedPacket.from_endpoint_info(info, key, timestamp=2_000)
    # Two isolated nodes: one holds the new packet, the other only an old one.
    s_new = await Dht.create(bind=LOOPBACK, bootstrap=[], server_mode=True)
    s_old = await Dht.create(bind=LOOPBACK, bootstrap=[], server_mode=True)
    try:
        for server, packet in ((s_new, new), (s_old, old)):
            async with await Dht.create(bind=LOOPBACK, bootstrap=[server.local_addr]) as c:
                assert await c.put_mutable(packet_to_item(packet)) == 1
        resolver = DhtAddressLookup(bootstrap=[s_new.local_addr, s_old.local_addr], bind=LOOPBACK)
        try:
            assert await resolver.fetch(key.public()) == new
            await s_new.aclose()  # only the stale copy remains reachable
            assert await resolver.fetch(key.public()) == new
            assert resolver.stats["seq_rollback"] == 1
        finally:
            await resolver.aclose()
    finally:
        await s_new.aclose()
        await s_old.aclose()


async def test_unknown_key_is_an_address_lookup_error() -> None:
    async with local_swarm(4, 0) as swarm:
        resolver = DhtAddressLookup(bootstrap=swarm.bootstrap_list(), bind=LOOPBACK)
        try:
            with pytest.raises(AddressLookupError, match="not found"):
                await resolver.fetch(SecretKey.generate().public())
        finally:
            await resolver.aclose()


async def test_oversized_value_is_refused_by_every_node() -> None:
    async with local_swarm(4, 0) as swarm:
        async with await Dht.create(bind=LOOPBACK, bootstrap=swarm.bootstrap_list()) as client:
            big = MutableItem.sign(SecretKey.generate(), 1, b"x" * 1200)
            with pytest.raises(DhtError) as info:
                await client.put_mutable(big)
            assert info.value.code == 205
        assert sum(d.rpc.stats["oversized"] for d in swarm.ours) >= 1
        assert all(d.rpc.store_size == 0 for d in swarm.ours)


async def test_flood_from_one_socket_is_rate_limited_over_udp() -> None:
    async with await Dht.create(bind=LOOPBACK, bootstrap=[], server_mode=True) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(LOOPBACK)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            flood = Rpc()
            for _ in range(200):
                _, data = flood.query(server.local_addr, b"ping", {}, 0.0)
                sock.sendto(data, server.local_addr)
            sock.sendto(b"not bencode", server.local_addr)
            # The server answers the burst and drops the rest; a fresh ping marks the end.
            replies = 0
            while True:
                try:
                    async with asyncio.timeout(0.5):
                        data = await loop.sock_recv(sock, 2048)
                except TimeoutError:
                    break
                assert isinstance(bencode.decode(data), dict)
                replies += 1
            assert replies <= 45
            assert server.rpc.stats["rate_limited"] >= 150
            assert server.rpc.stats["malformed"] == 1
        finally:
            sock.close()


async def test_publisher_republishes_with_a_newer_seq_and_no_cas() -> None:
    async with local_swarm(5, 0) as swarm:
        key = SecretKey.generate()
        info = EndpointInfo(key.public(), direct_addresses=(("127.0.0.1", 5),))
        publisher = DhtAddressLookup(
            key,
            bootstrap=swarm.bootstrap_list(),
            bind=LOOPBACK,
            relay_only=False,
            republish_interval=0.2,
        )
        try:
            publisher.publish(info)
            first = await asyncio.wait_for(publisher.wait_published(1), 10)
            second = await asyncio.wait_for(publisher.wait_published(2), 10)
            assert second.timestamp > first.timestamp
            assert second.endpoint_info() == info
            stored = [
                d.rpc.stored_item(packet_to_item(second).target, time.monotonic())
                for d in swarm.ours
            ]
            assert packet_to_item(second) in stored
        finally:
            await publisher.aclose()


async def test_relay_only_by_default_drops_direct_addresses() -> None:
    async with local_swarm(3, 0) as swarm:
        key = SecretKey.generate()
        info = EndpointInfo(
            key.public(),
            relay_urls=("https://relay.example.invalid./",),  # type: ignore[arg-type]
            direct_addresses=(("127.0.0.1", 5),),
        )
        publisher = DhtAddressLookup(key, bootstrap=swarm.bootstrap_list(), bind=LOOPBACK)
        try:
            publisher.publish(info)
            packet = await asyncio.wait_for(publisher.wait_published(), 10)
            got = packet.endpoint_info()
            assert got.relay_urls and not got.direct_addresses
        finally:
            await publisher.aclose()


async def test_lookup_through_a_node_that_hands_out_dead_addresses_is_bounded() -> None:
    """A hostile responder lists closer-looking nodes that never answer."""
    liar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    liar.bind(LOOPBACK)
    liar.setblocking(False)
    liar_addr = liar.getsockname()
    dead = []
    for _ in range(16):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(LOOPBACK)  # bound but silent: queries to it time out
        dead.append(s)
    loop = asyncio.get_running_loop()
    fake_rpc = Rpc(server_mode=True)

    async def serve() -> None:
        while True:
            data, addr = await loop.sock_recvfrom(liar, 2048)
            msg = bencode.decode(data)
            assert isinstance(msg, dict)
            nodes = b"".join(
                os.urandom(20)
                + socket.inet_aton("127.0.0.1")
                + s.getsockname()[1].to_bytes(2, "big")
                for s in dead
            )
            reply = {
                b"t": msg[b"t"],
                b"y": b"r",
                b"r": {b"id": fake_rpc.node_id, b"nodes": nodes, b"token": b"tok"},
            }
            await loop.sock_sendto(liar, bencode.encode(reply), addr)

    task = asyncio.create_task(serve())
    try:
        async with await Dht.create(bind=LOOPBACK, bootstrap=[liar_addr]) as client:
            client.lookup_timeout = 3.0
            start = time.monotonic()
            assert await client.get_mutable(SecretKey.generate().public().to_bytes()) == []
            assert time.monotonic() - start < 3.5
            assert client.packets_sent <= 1 + 16
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        liar.close()
        for s in dead:
            s.close()


async def test_dht_lookup_beside_pkarr_resolves_the_same_info(dns_server: DnsServer) -> None:
    from aioiroh import Endpoint
    from aioiroh.address_lookup.pkarr import PkarrPublisher, PkarrResolver

    async with local_swarm(5, 0) as swarm:
        key = SecretKey.generate()
        pkarr = PkarrPublisher(key, dns_server.pkarr_url, relay_only=False)
        dht = DhtAddressLookup(
            key, bootstrap=swarm.bootstrap_list(), bind=LOOPBACK, relay_only=False
        )
        a = await Endpoint.bind(key, bind_addr="127.0.0.1:0", address_lookup=[pkarr, dht])
        resolver_dht = DhtAddressLookup(bootstrap=swarm.bootstrap_list(), bind=LOOPBACK)
        resolver_pkarr = PkarrResolver(dns_server.pkarr_url)
        try:
            from_dht = await asyncio.wait_for(dht.wait_published(), 10)
            from_pkarr = await asyncio.wait_for(pkarr.wait_published(), 10)
            assert from_dht.endpoint_info() == from_pkarr.endpoint_info()
            assert from_dht.endpoint_info().direct_addresses
            got_dht = await resolver_dht.fetch(key.public())
            got_pkarr = await resolver_pkarr.fetch(key.public())
            assert got_dht.endpoint_info() == got_pkarr.endpoint_info()
            # The DHT packet is a valid pkarr relay body as well.
            status, _ = await dns_server.publish(
                SignedPacket.from_relay_body(key.public(), got_dht.to_relay_body())
            )
            assert status in (204, 409)
        finally:
            await a.close()
            for service in (pkarr, dht, resolver_dht, resolver_pkarr):
                await service.aclose()
