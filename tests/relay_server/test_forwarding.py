"""Relay server on real loopback sockets: handshake, forwarding, EndpointGone, Status, pings."""

from __future__ import annotations

import aiohttp
import pytest

from aioiroh.base.key import SecretKey
from aioiroh.relay.protocol.frames import (
    EndpointGone,
    Ping,
    Pong,
    Restarting,
    Status,
    StatusCode,
    encode_client_msg,
)
from aioiroh.relay.protocol.version import ProtocolVersion
from aioiroh.relay_server import RelayServer, ServerConfig
from tests.support.relay import TestRelayClient, connect_client


async def test_forward_single_and_batch(
    relay_server: RelayServer, relay_clients: list[TestRelayClient]
) -> None:
    a, b = relay_clients
    assert a.version is ProtocolVersion.V2
    await a.send(b.endpoint_id, b"hello", ecn=2)
    got = await b.recv_datagrams()
    assert got.src == a.endpoint_id
    assert got.datagrams.contents == b"hello" and got.datagrams.ecn == 2
    assert got.datagrams.segment_size is None
    await b.send(a.endpoint_id, b"x" * 1200 + b"y" * 1200 + b"z" * 10, ecn=3, seg=1200)
    back = await a.recv_datagrams()
    assert back.src == b.endpoint_id
    assert back.datagrams.ecn == 3 and back.datagrams.segment_size == 1200
    assert back.datagrams.split() == [b"x" * 1200, b"y" * 1200, b"z" * 10]
    m = relay_server.metrics
    assert m.datagram_frames_forwarded == 2
    assert m.datagrams_forwarded == 4
    assert m.clients == 2


async def test_unknown_destination_dropped(
    relay_server: RelayServer, relay_clients: list[TestRelayClient]
) -> None:
    a, b = relay_clients
    await a.send(SecretKey.generate().public(), b"nobody")
    await a.send(b.endpoint_id, b"after")
    assert (await b.recv_datagrams()).datagrams.contents == b"after"
    assert relay_server.metrics.dropped_unknown_dst == 1


async def test_ping_answered(relay_clients: list[TestRelayClient]) -> None:
    a, _ = relay_clients
    await a.send_raw(encode_client_msg(Ping(b"12345678")))
    assert await a.recv(Pong) == Pong(b"12345678")


async def test_endpoint_gone_to_former_peers(relay_server: RelayServer) -> None:
    a = await connect_client(relay_server.http_url)
    b = await connect_client(relay_server.http_url)
    c = await connect_client(relay_server.http_url)
    try:
        await a.send(b.endpoint_id, b"hi")
        await b.recv_datagrams()
        await a.close()
        assert await b.recv(EndpointGone) == EndpointGone(a.endpoint_id)
        # c never heard from a, so it gets nothing; check with a ping round trip.
        await c.send_raw(encode_client_msg(Ping(b"pingpong")))
        assert await c.recv() == Pong(b"pingpong")
    finally:
        for client in (b, c):
            await client.close()


async def test_newest_connection_wins(relay_server: RelayServer) -> None:
    key = SecretKey.generate()
    old = await connect_client(relay_server.http_url, key)
    peer = await connect_client(relay_server.http_url)
    new = await connect_client(relay_server.http_url, key)
    try:
        assert await old.recv(Status) == Status(StatusCode.SAME_ENDPOINT_ID_CONNECTED)
        await peer.send(key.public(), b"to-new")
        assert (await new.recv_datagrams()).datagrams.contents == b"to-new"
        await new.close()
        assert await old.recv(Status) == Status(StatusCode.HEALTHY)
        await peer.send(key.public(), b"to-old")
        assert (await old.recv_datagrams()).datagrams.contents == b"to-old"
        assert relay_server.metrics.same_id_replaced == 1
    finally:
        await old.close()
        await peer.close()


async def test_v1_client_gets_no_status(relay_server: RelayServer) -> None:
    key = SecretKey.generate()
    old = await connect_client(relay_server.http_url, key, protocols=("iroh-relay-v1",))
    new = await connect_client(relay_server.http_url, key)
    try:
        assert old.version is ProtocolVersion.V1
        await old.send_raw(encode_client_msg(Ping(b"abcdefgh")))
        # The Pong arrives; no Status frame (v1 has none) arrived before it.
        assert await old.recv() == Pong(b"abcdefgh")
    finally:
        await old.close()
        await new.close()


@pytest.mark.timeout(30)
async def test_server_pings_and_drops_silent_client() -> None:
    config = ServerConfig(ping_interval=0.2, ping_jitter=(0.0, 0.05), ping_timeout=0.3)
    async with RelayServer(config) as server:
        good = await connect_client(server.http_url)
        mute = await connect_client(server.http_url, answer_pings=False)
        try:
            await good.recv(Ping, timeout=5)
            await mute.recv(Ping, timeout=5)
            await mute.wait_closed(timeout=5)
            assert server.metrics.ping_timeouts >= 1
            assert server.metrics.clients == 1
            # The good client stays: it answers and gets pinged again.
            await good.recv(Ping, timeout=5)
        finally:
            await good.close()
            await mute.close()


async def test_graceful_stop_sends_restarting() -> None:
    server = RelayServer(ServerConfig(restart_reconnect_in_ms=10, restart_try_for_ms=20))
    await server.start()
    client = await connect_client(server.http_url)
    try:
        await server.stop()
        assert await client.recv(Restarting) == Restarting(10, 20)
        await client.wait_closed()
    finally:
        await client.close()


async def test_http_endpoints(relay_server: RelayServer) -> None:
    base = relay_server.http_url
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/ping") as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        async with s.get(base + "/generate_204", headers={"X-Iroh-Challenge": "abc-1.2_x"}) as r:
            assert r.status == 204 and r.headers["X-Iroh-Response"] == "response abc-1.2_x"
        async with s.get(base + "/generate_204", headers={"X-Iroh-Challenge": "bad value!"}) as r:
            assert r.status == 204 and "X-Iroh-Response" not in r.headers
        async with s.get(base + "/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with s.get(base + "/") as r:
            assert r.status == 200 and "relay" in await r.text()
        async with s.get(base + "/robots.txt") as r:
            assert "Disallow: /" in await r.text()
        async with s.get(base + "/nope") as r:
            assert r.status == 404
        async with s.get(base + "/metrics") as r:
            assert "relay_clients" in await r.text()
        async with s.get(base + "/relay") as r:  # not an upgrade
            assert r.status == 400


async def test_separate_metrics_port() -> None:
    async with RelayServer(ServerConfig(metrics_port=0)) as server:
        assert server.metrics_port is not None
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            assert "relay_accepts" in await r.text()


async def test_url_property(relay_server: RelayServer) -> None:
    assert str(relay_server.url).startswith(relay_server.http_url)
