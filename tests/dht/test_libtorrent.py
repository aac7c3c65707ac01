"""Interop with libtorrent's DHT (the independent oracle) in a local 22-node swarm."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from aioiroh import Endpoint, SecretKey
from aioiroh.address_lookup.dht import DhtAddressLookup, item_to_packet
from aioiroh.dht.driver import Dht
from aioiroh.dht.rpc import MutableItem
from aioiroh.dns.endpoint_info import EndpointInfo
from aioiroh.dns.pkarr import SignedPacket

from .lt_support import expanded_secret, lt
from .swarm import Swarm, local_swarm

pytestmark = pytest.mark.timeout(90)

ALPN = b"aioiroh/dht-echo/0"
OURS, LIBTORRENT = 12, 10


def _own_socket_addresses() -> list[str]:
    """Local addresses of every TCP/UDP socket this process holds (from /proc)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for table in ("tcp", "udp", "tcp6", "udp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                out.append(cols[1].split(":")[0])
    return out


def _is_loopback_hex(addr: str) -> bool:
    if len(addr) == 8:  # IPv4, little-endian hex
        return addr.endswith("7F")
    return addr == "00000000000000000000000001000000"  # ::1


async def lt_get(swarm: Swarm, index: int, public_key: bytes, min_seq: int) -> object:
    node = swarm.lts[index]
    node.session.dht_get_mutable_item(public_key, b"")
    return await asyncio.to_thread(
        node.wait_alert,
        lt.dht_mutable_item_alert,
        20,
        lambda a: bytes(a.key) == public_key and a.seq >= min_seq,
    )


async def test_libtorrent_stays_on_loopback() -> None:
    async with local_swarm(2, 3) as swarm:
        settings = swarm.lts[0].session.get_settings()
        assert not settings["enable_lsd"] and not settings["enable_upnp"]
        assert not settings["enable_natpmp"]
        assert "libtorrent.org" not in settings["dht_bootstrap_nodes"]
        addrs = _own_socket_addresses()
        assert addrs and all(_is_loopback_hex(a) for a in addrs), addrs


async def test_libtorrent_gets_the_exact_packet_we_publish() -> None:
    async with local_swarm(OURS, LIBTORRENT) as swarm:
        assert len(swarm) >= 20
        key = SecretKey.generate()
        info = EndpointInfo(key.public(), direct_addresses=(("127.0.0.1", 4242),))
        lookup = DhtAddressLookup(
            key, bootstrap=swarm.bootstrap_list(), bind=("127.0.0.1", 0), relay_only=False
        )
        try:
            lookup.publish(info)
            packet = await asyncio.wait_for(lookup.wait_published(), 20)
            for index in (0, LIBTORRENT - 1):
                alert = await lt_get(swarm, index, key.public().to_bytes(), packet.timestamp)
                got = SignedPacket.from_bytes(
                    bytes(alert.key)
                    + bytes(alert.signature)
                    + alert.seq.to_bytes(8, "big")
                    + bytes(alert.item)
                )
                assert got == packet
                assert got.endpoint_info() == info
        finally:
            await lookup.aclose()


async def test_we_get_and_verify_what_libtorrent_puts() -> None:
    async with local_swarm(OURS, LIBTORRENT) as swarm:
        seed = os.urandom(32)
        public_key = SecretKey(seed).public().to_bytes()
        data = b"stored by libtorrent"
        node = swarm.lts[3]
        node.session.dht_put_mutable_item(expanded_secret(seed), public_key, data, b"")
        alert = await asyncio.to_thread(node.wait_alert, lt.dht_put_alert, 20)
        assert alert.num_success > 0
        async with await Dht.create(
            bind=("127.0.0.1", 0), bootstrap=swarm.bootstrap_list()
        ) as client:
            item = await client.get_mutable_most_recent(public_key)
        assert item is not None
        assert item.value == data and item.seq == alert.seq
        # Verified on receipt; check once more against the BEP 44 signable string.
        MutableItem.verified(item.public_key, item.seq, item.value, item.signature)


async def echo_forever(ep: Endpoint) -> None:
    while True:
        conn = await ep.accept()
        send, recv = await conn.accept_bi()
        await send.write_all(await recv.read_to_end(1 << 16))
        await send.finish()


async def test_endpoint_connects_by_id_with_only_the_dht_lookup() -> None:
    async with local_swarm(OURS, LIBTORRENT) as swarm:
        key = SecretKey.generate()
        lookup_a = DhtAddressLookup(
            key, bootstrap=swarm.bootstrap_list(), bind=("127.0.0.1", 0), relay_only=False
        )
        a = await Endpoint.bind(
            key, alpns=[ALPN], bind_addr="127.0.0.1:0", address_lookup=[lookup_a]
        )
        task = asyncio.create_task(echo_forever(a))
        lookup_b = DhtAddressLookup(bootstrap=swarm.bootstrap_list(), bind=("127.0.0.1", 0))
        b = await Endpoint.bind(bind_addr="127.0.0.1:0", address_lookup=[lookup_b])
        try:
            packet = await asyncio.wait_for(lookup_a.wait_published(), 20)
            assert packet.endpoint_info().direct_addresses
            # A libtorrent node sees it too.
            await lt_get(swarm, 1, key.public().to_bytes(), packet.timestamp)
            conn = await b.connect(key.public(), ALPN, timeout=15)
            send, recv = await conn.open_bi()
            await send.write_all(b"over the dht")
            await send.finish()
            assert await recv.read_to_end(100) == b"over the dht"
            conn.close()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await b.close()
            await a.close()
            await lookup_a.aclose()
            await lookup_b.aclose()


async def test_resolves_after_a_third_of_the_swarm_stops() -> None:
    async with local_swarm(OURS, LIBTORRENT) as swarm:
        key = SecretKey.generate()
        info = EndpointInfo(key.public(), direct_addresses=(("127.0.0.1", 1),))
        publisher = DhtAddressLookup(
            key, bootstrap=swarm.bootstrap_list(), bind=("127.0.0.1", 0), relay_only=False
        )
        try:
            publisher.publish(info)
            packet = await asyncio.wait_for(publisher.wait_published(), 20)
        finally:
            await publisher.aclose()
        # Keep the first three (bootstrap) nodes; stop a third of the 22.
        await swarm.stop_ours(4)
        swarm.stop_lts(4)
        resolver = DhtAddressLookup(bootstrap=swarm.bootstrap_list(), bind=("127.0.0.1", 0))
        try:
            assert await resolver.fetch(key.public()) == packet
        finally:
            await resolver.aclose()
        # libtorrent still finds it among the survivors too.
        alert = await lt_get(swarm, 0, key.public().to_bytes(), packet.timestamp)
        assert (
            item_to_packet(
                MutableItem(bytes(alert.key), alert.seq, bytes(alert.item), bytes(alert.signature))
            )
            == packet
        )
