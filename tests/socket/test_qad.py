"""The endpoint's QAD client: it learns its address from the home relay's QAD service."""

from __future__ import annotations

import asyncio

from aioiroh import Endpoint, RelayMode
from aioiroh.relay.relay_map import RelayConfig
from aioiroh.relay_server import RelayServer, ServerConfig

ALPN = b"test/qad/0"


async def test_endpoint_learns_reflexive_address_and_keeps_connections() -> None:
    async with RelayServer(ServerConfig(qad_port=0)) as server:
        assert server.qad_port is not None
        mode = RelayMode.custom([RelayConfig(server.url, quic_port=server.qad_port)])
        a = await Endpoint.bind(
            alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False, relay_mode=mode
        )
        b = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False, relay_mode=mode)
        try:
            assert await a.reflexive_addresses() == a.bound_sockets()
            assert a.bound_sockets()[0] in a.direct_addresses()
            assert a.endpoint_info().direct_addresses == tuple(a.direct_addresses())
            # QAD shares the endpoint's UDP socket with connections: both keep working.
            await a.online()
            conn = await b.connect(a.addr(), ALPN)
            inc = await a.accept()
            send, _ = await conn.open_bi()
            await send.write_all(b"hi")
            await send.finish()
            _, recv = await inc.accept_bi()
            assert await recv.read_to_end(10) == b"hi"
            # A forced re-run (as on a network change) answers again over the same socket.
            assert server.qad is not None
            before = server.qad.stats.connections
            a._qad_wakeup.set()
            await asyncio.wait_for(server.qad.wait_stats(lambda s: s.connections > before), 10)
            conn.close(0, b"bye")
        finally:
            await b.close()
            await a.close()


async def test_no_qad_port_means_no_reflexive_address() -> None:
    async with RelayServer(ServerConfig()) as server:
        mode = RelayMode.custom([RelayConfig(server.url, quic_port=None)])
        ep = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False, relay_mode=mode)
        try:
            await ep.online()
            assert await ep.reflexive_addresses(timeout=5) == []
        finally:
            await ep.close()
