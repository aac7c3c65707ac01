"""Transfers survive a hostile network: loss, duplication, reordering and corruption on the
loopback attack proxy, both directions, aioiroh to aioiroh (bounded: 1 MiB, 60 s)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from aioiroh.base.endpoint_addr import EndpointAddr
from aioiroh.endpoint import Connection, Endpoint
from tests.support.attack_proxy import AttackProxy

pytestmark = pytest.mark.timeout(60)

ALPN = b"aioiroh/test/adversarial/0"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB

IMPAIRMENTS = {
    "loss 5%": {"loss": 0.05},
    "duplicate 20%": {"duplicate": 0.2},
    "reorder 20%": {"reorder": 0.2},
    "corrupt 5%": {"corrupt": 0.05},
    "all at once": {"loss": 0.02, "duplicate": 0.05, "reorder": 0.05, "corrupt": 0.02},
}


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    server = await Endpoint.bind(
        alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False, nat_traversal=False
    )
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False, nat_traversal=False)
    yield server, client
    await client.close()
    await server.close()


async def _echo_digest(conn: Connection) -> None:
    send, recv = await conn.accept_bi()
    data = await recv.read_to_end(len(PAYLOAD) + 1)
    await send.write_all(hashlib.sha256(data).digest() + data[:65536])
    await send.finish()


@pytest.mark.parametrize("name", list(IMPAIRMENTS))
async def test_a_transfer_completes_intact_through_an_impaired_network(
    endpoints: tuple[Endpoint, Endpoint], name: str
) -> None:
    server, client = endpoints
    host, port = server.addr().direct_addresses[0]
    proxy = await AttackProxy.start((str(host), int(port)), seed=7)
    try:
        for knob, value in IMPAIRMENTS[name].items():
            setattr(proxy, knob, value)
        accepted = asyncio.create_task(server.accept())
        target = EndpointAddr(server.id, direct_addresses=[proxy.addr])
        conn = await asyncio.wait_for(client.connect(target, ALPN), 20)
        server_conn = await asyncio.wait_for(accepted, 20)
        echo = asyncio.create_task(_echo_digest(server_conn))
        send, recv = await conn.open_bi()
        await send.write_all(PAYLOAD)
        await send.finish()
        answer = await asyncio.wait_for(recv.read_to_end(32 + 65536), 40)
        await echo
        assert answer == hashlib.sha256(PAYLOAD).digest() + PAYLOAD[:65536]
    finally:
        proxy.close()
