"""Peer address changes on real loopback sockets, through the attack proxy.

A third party replaying the client's packets must not turn the server into a reflector (bytes
sent to it stay within 3x what it sent), while a genuine NAT rebinding still moves the path
and the transfer goes on.
"""

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


@pytest.fixture
async def through_proxy() -> AsyncIterator[tuple[Connection, Connection, AttackProxy]]:
    # No NAT traversal: the client must not find the server's real port behind the proxy.
    server = await Endpoint.bind(
        alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False, nat_traversal=False
    )
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False, nat_traversal=False)
    host, port = server.addr().direct_addresses[0]
    proxy = await AttackProxy.start((str(host), int(port)))
    try:
        target = EndpointAddr(server.id, direct_addresses=[proxy.addr])
        accepted = asyncio.create_task(server.accept())
        conn = await asyncio.wait_for(client.connect(target, ALPN), 10)
        yield conn, await asyncio.wait_for(accepted, 10), proxy
    finally:
        proxy.close()
        await client.close()
        await server.close()


async def _echo_once(server_conn: Connection) -> None:
    send, recv = await server_conn.accept_bi()
    data = await recv.read_to_end(len(PAYLOAD) + 1)
    await send.write_all(hashlib.sha256(data).digest())
    await send.finish()


async def _send_and_check(client_conn: Connection, middle: object = None) -> None:
    send, recv = await client_conn.open_bi()
    half = len(PAYLOAD) // 2
    await send.write_all(PAYLOAD[:half])
    if middle is not None:
        await middle  # type: ignore[misc]
    await send.write_all(PAYLOAD[half:])
    await send.finish()
    digest = await asyncio.wait_for(recv.read_to_end(64), 30)
    assert digest == hashlib.sha256(PAYLOAD).digest()


async def test_copies_from_a_third_party_draw_at_most_three_times_their_bytes(
    through_proxy: tuple[Connection, Connection, AttackProxy],
) -> None:
    conn, server_conn, proxy = through_proxy
    proxy.spoof_copies = True  # every client packet also arrives first from a third party
    echo = asyncio.create_task(_echo_once(server_conn))
    await _send_and_check(conn)
    await echo
    await asyncio.sleep(0.3)  # validation retries still in flight
    assert proxy.third_sent > 100_000
    assert proxy.third_received <= 3 * proxy.third_sent
    # The path never moved to the third party.
    assert server_conn._quic.rebindings == 0  # type: ignore[attr-defined]
    third = f"{proxy.third_addr[0]}:{proxy.third_addr[1]}"
    assert all(third not in p.remote_addr for p in server_conn.paths())


async def test_nat_rebinding_mid_transfer_moves_the_path_and_the_transfer_completes(
    through_proxy: tuple[Connection, Connection, AttackProxy],
) -> None:
    conn, server_conn, proxy = through_proxy
    echo = asyncio.create_task(_echo_once(server_conn))
    await _send_and_check(conn, middle=proxy.rebind())
    await echo
    assert proxy.rebinds == 1
    assert server_conn._quic.rebindings == 1  # type: ignore[attr-defined]
