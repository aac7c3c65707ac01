"""Connect by EndpointId alone: our relay + our DNS/pkarr server, and local discovery (mDNS)."""

from __future__ import annotations

import asyncio

import pytest

from aioiroh import ConnectError, Endpoint, RelayMode, SecretKey
from aioiroh.address_lookup.dns import DnsAddressLookup
from aioiroh.address_lookup.mdns import MdnsAddressLookup
from aioiroh.address_lookup.memory import MemoryLookup
from aioiroh.address_lookup.pkarr import PkarrPublisher, PkarrResolver
from aioiroh.dns_server.server import DnsServer
from aioiroh.relay_server import RelayServer

from ..support.dns import TEST_ORIGIN

pytestmark = pytest.mark.timeout(60)

ALPN = b"aioiroh/lookup-echo/0"


async def echo_forever(ep: Endpoint) -> None:
    while True:
        conn = await ep.accept()
        send, recv = await conn.accept_bi()
        await send.write_all(await recv.read_to_end(1 << 20))
        await send.finish()


async def ask(client: Endpoint, target, msg: bytes) -> tuple[bytes, bool]:  # type: ignore[no-untyped-def]
    conn = await client.connect(target, ALPN, timeout=10)
    send, recv = await conn.open_bi()
    await send.write_all(msg)
    await send.finish()
    reply = await recv.read_to_end(1000)
    relayed = any(p.is_selected and p.is_relay for p in conn.paths())
    conn.close()
    return reply, relayed


@pytest.mark.parametrize("relay_only", [True, False])
@pytest.mark.parametrize("resolver", ["dns", "pkarr"])
async def test_connect_by_id_and_reconnect_after_restart(
    relay_server: RelayServer, dns_server: DnsServer, relay_only: bool, resolver: str
) -> None:
    key = SecretKey.generate()
    mode = RelayMode.custom([relay_server.http_url])

    async def start_a() -> tuple[Endpoint, PkarrPublisher, asyncio.Task[None]]:
        publisher = PkarrPublisher(key, dns_server.pkarr_url, relay_only=relay_only)
        ep = await Endpoint.bind(
            key,
            alpns=[ALPN],
            bind_addr="127.0.0.1:0",
            relay_mode=mode,
            address_lookup=[publisher],
            nat_traversal=False,  # keep the path the lookup gave (no loopback upgrade)
        )
        await ep.online()
        # Published once with the home relay (and the direct addresses unless relay-only).
        packet = await asyncio.wait_for(publisher.wait_published(1), 10)
        while not packet.endpoint_info().relay_urls:
            packet = await asyncio.wait_for(
                publisher.wait_published(publisher.published_count + 1), 10
            )
        return ep, publisher, asyncio.create_task(echo_forever(ep))

    if resolver == "dns":
        lookup = DnsAddressLookup(TEST_ORIGIN, dns_server.dns_addr)
    else:
        lookup = PkarrResolver(dns_server.pkarr_url)
    b = await Endpoint.bind(
        bind_addr="127.0.0.1:0", relay_mode=mode, address_lookup=[lookup], nat_traversal=False
    )
    a, _, task = await start_a()
    try:
        reply, relayed = await ask(b, a.id, b"first")
        assert reply == b"first"
        assert relayed == relay_only
        first_port = a.bound_sockets()[0][1]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await a.close()

        a, _, task = await start_a()
        assert a.bound_sockets()[0][1] != first_port
        reply, _ = await ask(b, str(a.id), b"second")
        assert reply == b"second"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await a.close()
        await b.close()


async def test_memory_lookup_and_unknown_id() -> None:
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0")
    task = asyncio.create_task(echo_forever(server))
    memory = MemoryLookup([server.endpoint_info()])
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", address_lookup=[memory])
    try:
        assert (await ask(client, server.id, b"mem"))[0] == b"mem"
        with pytest.raises(ConnectError):
            await client.connect(SecretKey.generate().public(), ALPN, timeout=1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        await server.close()


async def test_mdns_on_loopback_multicast() -> None:
    """Two endpoints, no relay and no DNS, find each other by local discovery."""
    import random

    port = random.randint(20000, 60000)
    key_a = SecretKey.generate()
    mdns_a = MdnsAddressLookup(key_a.public(), interface="127.0.0.1", port=port, query_interval=0.2)
    server = await Endpoint.bind(
        key_a, alpns=[ALPN], bind_addr="127.0.0.1:0", address_lookup=[mdns_a]
    )
    task = asyncio.create_task(echo_forever(server))
    key_b = SecretKey.generate()
    mdns_b = MdnsAddressLookup(key_b.public(), interface="127.0.0.1", port=port, query_interval=0.2)
    client = await Endpoint.bind(key_b, bind_addr="127.0.0.1:0", address_lookup=[mdns_b])
    try:
        assert (await ask(client, server.id, b"lan"))[0] == b"lan"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        await server.close()


async def test_stale_address_is_rescued_by_fresh_lookup_results() -> None:
    """The dial starts on a dead address; lookup reports the live one while dialing."""
    import socket as _socket

    from aioiroh import EndpointAddr

    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0")
    task = asyncio.create_task(echo_forever(server))
    memory = MemoryLookup([server.endpoint_info()])
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", address_lookup=[memory])
    with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as dead:
        dead.bind(("127.0.0.1", 0))
        stale = EndpointAddr(server.id, None, [dead.getsockname()])
        try:
            assert (await ask(client, stale, b"fresh"))[0] == b"fresh"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()
            await server.close()
