"""A Rust iroh client (PyPI iroh oracle) talking to an aioiroh server through the attack proxy:
copies of its packets from a third party do not make our server a reflector, and its NAT
rebinding mid-transfer is followed."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import iroh
import pytest

from aioiroh.base.endpoint_addr import EndpointAddr
from aioiroh.endpoint import Connection, Endpoint
from tests.support.attack_proxy import AttackProxy
from tests.support.oracle import addr_to_rust, bind_rust

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

ALPN = b"aioiroh/test/adversarial/0"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
async def rust_through_proxy() -> AsyncIterator[tuple[iroh.Connection, Connection, AttackProxy]]:
    ours = await Endpoint.bind(
        alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False, nat_traversal=False
    )
    rust = await bind_rust([])
    host, port = ours.addr().direct_addresses[0]
    proxy = await AttackProxy.start((str(host), int(port)))
    try:
        accepted = asyncio.create_task(ours.accept())
        target = EndpointAddr(ours.id, direct_addresses=[proxy.addr])
        conn = await asyncio.wait_for(rust.connect(addr_to_rust(target), ALPN), 10)
        yield conn, await asyncio.wait_for(accepted, 10), proxy
    finally:
        proxy.close()
        await rust.close()
        await ours.close()


async def _digest_server(conn: Connection) -> None:
    send, recv = await conn.accept_bi()
    data = await recv.read_to_end(len(PAYLOAD) + 1)
    await send.write_all(hashlib.sha256(data).digest())
    await send.finish()


async def _rust_send(conn: iroh.Connection, proxy: AttackProxy, *, rebind: bool) -> None:
    bi = await conn.open_bi()
    half = len(PAYLOAD) // 2
    await bi.send().write_all(PAYLOAD[:half])
    if rebind:
        await proxy.rebind()
    await bi.send().write_all(PAYLOAD[half:])
    await bi.send().finish()
    digest = bytes(await asyncio.wait_for(bi.recv().read_to_end(64), 30))
    assert digest == hashlib.sha256(PAYLOAD).digest()


async def test_copies_of_a_rust_clients_packets_draw_at_most_three_times_their_bytes(
    rust_through_proxy: tuple[iroh.Connection, Connection, AttackProxy],
) -> None:
    rust_conn, ours, proxy = rust_through_proxy
    proxy.spoof_copies = True
    server = asyncio.create_task(_digest_server(ours))
    await _rust_send(rust_conn, proxy, rebind=False)
    await server
    await asyncio.sleep(0.3)
    assert proxy.third_sent > 100_000
    assert proxy.third_received <= 3 * proxy.third_sent
    assert ours._quic.rebindings == 0  # type: ignore[attr-defined]


async def test_a_rust_clients_nat_rebinding_is_followed(
    rust_through_proxy: tuple[iroh.Connection, Connection, AttackProxy],
) -> None:
    rust_conn, ours, proxy = rust_through_proxy
    server = asyncio.create_task(_digest_server(ours))
    await _rust_send(rust_conn, proxy, rebind=True)
    await server
    assert ours._quic.rebindings == 1  # type: ignore[attr-defined]
