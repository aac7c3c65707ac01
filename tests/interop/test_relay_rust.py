"""Two Rust endpoints (PyPI iroh) talk through our relay (wire doc §4.3, §5, §13)."""

from __future__ import annotations

import asyncio
import os

import iroh
import pytest

from aioiroh.relay_server import RelayServer
from tests.support.oracle import RustFactory

pytestmark = pytest.mark.interop

ALPN = b"aioiroh/test/relay-echo"
PAYLOAD = 256 * 1024  # the binding copies bytes one by one (~5 MB/s); keep it modest


async def _echo_once(ep: iroh.Endpoint) -> None:
    incoming = await ep.accept_next()
    remote = await incoming.remote_addr()
    accepting = await incoming.accept()
    conn = await accepting.connect()
    bi = await conn.accept_bi()
    data = await bi.recv().read_to_end(4 * PAYLOAD)
    await bi.send().write_all(data)
    await bi.send().finish()
    await conn.closed()
    del remote


@pytest.mark.timeout(60)
async def test_two_rust_endpoints_through_our_relay(
    relay_server: RelayServer, rust_endpoint: RustFactory
) -> None:
    url = relay_server.http_url + "/"
    server_ep = await rust_endpoint([ALPN], relay_urls=[url])
    client_ep = await rust_endpoint([ALPN], relay_urls=[url])
    async with asyncio.timeout(20):
        await server_ep.online()
        await client_ep.online()
    assert relay_server.metrics.accepts >= 2

    echo = asyncio.create_task(_echo_once(server_ep))
    try:
        # Relay-only address: the dial must start over our relay.
        addr = iroh.EndpointAddr(server_ep.id(), str(server_ep.addr().relay_url()), [])
        async with asyncio.timeout(30):
            conn = await client_ep.connect(addr, ALPN)
            paths = conn.paths()
            assert any(p.is_relay for p in paths), paths
            bi = await conn.open_bi()
            payload = os.urandom(PAYLOAD)
            await bi.send().write_all(payload)
            await bi.send().finish()
            back = await bi.recv().read_to_end(4 * PAYLOAD)
            assert back == payload
            conn.close(0, b"done")
            await echo
    finally:
        if not echo.done():
            echo.cancel()
            try:
                await echo
            except (asyncio.CancelledError, Exception):
                pass
    m = relay_server.metrics
    assert m.datagram_frames_forwarded > 0
    assert m.pings_recv >= 2  # Rust pings right after connecting
    assert m.protocol_errors == 0 and m.auth_failures == 0
