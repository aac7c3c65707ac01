"""The relay server against floods of handshakes and idle sockets (issue 12)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from aioiroh.base.key import SecretKey
from aioiroh.relay_server import RelayServer, ServerConfig
from tests.support.relay import TestRelayClient, connect_client


async def _try_connect(url: str, key: SecretKey | None = None) -> TestRelayClient | None:
    try:
        return await connect_client(url, key)
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 503
        return None


async def _wait_closed(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):
        pass


@pytest.mark.timeout(60)
async def test_max_clients_holds_under_200_concurrent_handshakes() -> None:
    async with RelayServer(ServerConfig(max_clients=10)) as server:
        results = await asyncio.gather(*(_try_connect(server.http_url) for _ in range(200)))
        clients = [c for c in results if c is not None]
        try:
            assert 1 <= len(clients) <= 10
            assert len(server.hub.conns) == len(clients)
            assert server.metrics.full_refused == 200 - len(clients)
            assert server.hub.handshaking == 0
        finally:
            await asyncio.gather(*(c.close() for c in clients))


@pytest.mark.timeout(20)
async def test_one_key_holds_one_slot_and_newest_wins() -> None:
    config = ServerConfig(max_clients=2, max_inactive_per_endpoint=1)
    async with RelayServer(config) as server:
        key = SecretKey.generate()
        same = [await connect_client(server.http_url, key) for _ in range(3)]
        other = await connect_client(server.http_url)  # one key used only one slot
        try:
            assert server.hub.registry.endpoint_count == 2
            assert server.metrics.same_id_closed == 1  # the oldest of the three was dropped
            async with asyncio.timeout(5):
                while len(server.hub.conns) > 3:
                    await asyncio.sleep(0.01)
            assert server.hub.registry.active_conn(key.public()) is not None
            assert await _try_connect(server.http_url) is None  # full now
        finally:
            await asyncio.gather(*(c.close() for c in [*same, other]), return_exceptions=True)


@pytest.mark.timeout(20)
async def test_idle_and_half_sent_sockets_closed_while_clients_connect() -> None:
    async with RelayServer(ServerConfig(http_keepalive_timeout=1.0)) as server:
        conns = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(40)]
        for i, (_, writer) in enumerate(conns):
            if i % 2:
                writer.write(b"GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        start = time.monotonic()
        client = await connect_client(server.http_url)
        try:
            async with asyncio.timeout(5):
                await asyncio.gather(*(_wait_closed(r) for r, _ in conns))
            assert time.monotonic() - start < 4
            assert len(server.hub.conns) == 1  # the real client is unaffected
        finally:
            await client.close()
            for _, writer in conns:
                writer.close()


@pytest.mark.timeout(20)
async def test_per_ip_connection_cap_leaves_room_for_other_addresses() -> None:
    async with RelayServer(ServerConfig(http_max_per_ip=5, http_max_connections=50)) as server:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await _wait_closed(reader)  # the sixth from one IP is closed at once
        writer.close()
        other_reader, other_writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=("127.0.0.2", 0)
        )
        other_writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b" 200 " in await asyncio.wait_for(other_reader.readline(), 5)
        other_writer.close()
        assert server.gate.refused_per_ip == 1
        for _, w in held:
            w.close()
