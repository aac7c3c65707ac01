"""RelayClient against our relay server and small hand-written relays on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import WSMsgType, web

from aioiroh.base.key import SecretKey
from aioiroh.base.relay_url import RelayUrl
from aioiroh.errors import RelayAuthError, RelayError
from aioiroh.relay.client import RelayClient
from aioiroh.relay.protocol.frames import (
    ClientToRelayDatagrams,
    Datagrams,
    Ping,
    Pong,
    RelayToClientDatagrams,
    Restarting,
    ServerConfirmsAuth,
    decode_client_msg,
    encode_relay_msg,
)
from aioiroh.relay.protocol.version import ProtocolVersion
from aioiroh.relay_server.config import AccessConfig, ServerConfig
from aioiroh.relay_server.server import RelayServer
from aioiroh.util.watch import Watchable


@contextlib.asynccontextmanager
async def relay(config: ServerConfig | None = None) -> AsyncIterator[RelayServer]:
    server = RelayServer(config or ServerConfig())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


Handler = Callable[[web.WebSocketResponse], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_relay(handler: Handler, *, protocols: tuple[str, ...]) -> AsyncIterator[str]:
    """A minimal hand-written relay: upgrades /relay and runs ``handler`` on the socket."""

    async def upgrade(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=protocols)
        await ws.prepare(request)
        await handler(ws)
        return ws

    app = web.Application()
    app.router.add_get("/relay", upgrade)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_handshake_and_ping() -> None:
    async with relay() as server:
        key = SecretKey.generate()
        client = await RelayClient.connect(server.http_url, key)
        try:
            assert client.version is ProtocolVersion.V2
            assert client.public_key == key.public()
            assert client.url == RelayUrl(server.http_url)
            rtt = await client.ping(timeout=5)
            assert 0 <= rtt < 5
            # The keep-alive ping sent right after connecting got its pong too.
            assert client.rtt is not None
            assert client.is_connected
        finally:
            await client.close()
        assert not client.is_connected
        with pytest.raises(RelayError):
            await client.recv()


async def test_v1_only() -> None:
    async with relay() as server:
        client = await RelayClient.connect(
            server.http_url, SecretKey.generate(), protocols=(ProtocolVersion.V1,)
        )
        async with client:
            assert client.version is ProtocolVersion.V1
            await client.ping(timeout=5)


async def test_denied() -> None:
    key = SecretKey.generate()
    config = ServerConfig(access=AccessConfig(deny=frozenset({key.public()})))
    async with relay(config) as server:
        with pytest.raises(RelayAuthError):
            await RelayClient.connect(server.http_url, key)
        # Someone else still gets in.
        async with await RelayClient.connect(server.http_url, SecretKey.generate()):
            pass


async def test_bearer_token() -> None:
    config = ServerConfig(access=AccessConfig(tokens=frozenset({"sesame"})))
    async with relay(config) as server:
        with pytest.raises(RelayError):
            await RelayClient.connect(server.http_url, SecretKey.generate())
        async with await RelayClient.connect(
            server.http_url, SecretKey.generate(), auth_token="sesame"
        ):
            pass


async def test_datagrams_and_batches() -> None:
    async with relay() as server:
        ka, kb = SecretKey.generate(), SecretKey.generate()
        a = await RelayClient.connect(server.http_url, ka)
        b = await RelayClient.connect(server.http_url, kb)
        try:
            await a.send_datagram(kb.public(), b"hello", ecn=2)
            msg = await asyncio.wait_for(b.recv(), 5)
            assert isinstance(msg, RelayToClientDatagrams)
            assert msg.src == ka.public()
            assert msg.datagrams == Datagrams(2, None, b"hello")

            # A batch keeps its segment size through the relay and splits back.
            await a.send_datagram(kb.public(), b"aaaabbbbcc", segment_size=4)
            msg = await asyncio.wait_for(b.recv(), 5)
            assert isinstance(msg, RelayToClientDatagrams)
            assert msg.datagrams.segment_size == 4
            assert msg.datagrams.split() == [b"aaaa", b"bbbb", b"cc"]

            # A "batch" of one datagram goes as a plain datagram frame.
            await b.send_datagram(ka.public(), b"xyz", segment_size=10)
            msg = await asyncio.wait_for(a.recv(), 5)
            assert isinstance(msg, RelayToClientDatagrams)
            assert msg.datagrams == Datagrams(0, None, b"xyz")
            assert a.bytes_sent > 0 and b.bytes_received > 0
        finally:
            await a.close()
            await b.close()


async def test_iteration_ends_on_close() -> None:
    async with relay() as server:
        ka, kb = SecretKey.generate(), SecretKey.generate()
        a = await RelayClient.connect(server.http_url, ka)
        b = await RelayClient.connect(server.http_url, kb)
        got: list[bytes] = []

        async def consume() -> None:
            async for msg in b:
                assert isinstance(msg, RelayToClientDatagrams)
                got.append(msg.datagrams.contents)
                if len(got) == 3:
                    await b.close()

        task = asyncio.create_task(consume())
        for i in range(3):
            await a.send_datagram(kb.public(), bytes([i]))
        await asyncio.wait_for(task, 5)
        assert got == [b"\x00", b"\x01", b"\x02"]
        await a.close()


async def test_relay_stop_fails_client() -> None:
    async with relay() as server:
        client = await RelayClient.connect(server.http_url, SecretKey.generate())
        await server.stop()
        # A graceful stop may announce itself with Restarting before the socket closes.
        with pytest.raises(RelayError):
            while True:
                msg = await asyncio.wait_for(client.recv(), 10)
                assert isinstance(msg, Restarting)
        assert client.error is not None
        with pytest.raises(RelayError):
            await client.send_datagram(SecretKey.generate().public(), b"x")
        await client.close()


async def test_unreachable() -> None:
    async with relay() as server:
        url = server.http_url
    with pytest.raises(RelayError):
        await RelayClient.connect(url, SecretKey.generate(), timeout=5)


async def test_missing_subprotocol_is_refused() -> None:
    async def handler(ws: web.WebSocketResponse) -> None:
        await ws.send_bytes(encode_relay_msg(ServerConfirmsAuth(), ProtocolVersion.V2))
        await ws.receive()

    async with fake_relay(handler, protocols=()) as url:
        with pytest.raises(RelayError, match="Sec-WebSocket-Protocol"):
            await RelayClient.connect(url, SecretKey.generate())


async def test_immediate_confirm_and_ping_timeout() -> None:
    """A relay that confirms without a challenge, then never answers pings."""
    seen: list[object] = []

    async def handler(ws: web.WebSocketResponse) -> None:
        await ws.send_bytes(encode_relay_msg(ServerConfirmsAuth(), ProtocolVersion.V2))
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                seen.append(decode_client_msg(msg.data, ProtocolVersion.V2))

    async with fake_relay(handler, protocols=("iroh-relay-v2",)) as url:
        client = await RelayClient.connect(url, SecretKey.generate(), ping_timeout=0.3)
        with pytest.raises(RelayError, match="ping"):
            await asyncio.wait_for(client.recv(), 5)
        await client.close()
    assert seen and isinstance(seen[0], Ping)


async def test_answers_relay_ping_and_rejects_bad_frames() -> None:
    pong = asyncio.get_running_loop().create_future()

    async def handler(ws: web.WebSocketResponse) -> None:
        await ws.send_bytes(encode_relay_msg(ServerConfirmsAuth(), ProtocolVersion.V2))
        await ws.send_str("text frames are ignored")
        await ws.send_bytes(encode_relay_msg(Ping(b"12345678"), ProtocolVersion.V2))
        async for msg in ws:
            if msg.type is not WSMsgType.BINARY:
                continue
            decoded = decode_client_msg(msg.data, ProtocolVersion.V2)
            if isinstance(decoded, Ping):
                await ws.send_bytes(encode_relay_msg(Pong(decoded.data), ProtocolVersion.V2))
            elif isinstance(decoded, Pong) and not pong.done():
                pong.set_result(decoded.data)
                await ws.send_bytes(b"\x3f garbage")  # unknown frame type
            elif isinstance(decoded, ClientToRelayDatagrams):
                pass

    async with fake_relay(handler, protocols=("iroh-relay-v2",)) as url:
        client = await RelayClient.connect(url, SecretKey.generate())
        assert await asyncio.wait_for(pong, 5) == b"12345678"
        with pytest.raises(RelayError, match="bad frame"):
            await asyncio.wait_for(client.recv(), 5)
        await client.close()


async def test_keepalive_pings_repeat_while_idle() -> None:
    pings = Watchable(0)

    async def handler(ws: web.WebSocketResponse) -> None:
        await ws.send_bytes(encode_relay_msg(ServerConfirmsAuth(), ProtocolVersion.V2))
        async for msg in ws:
            decoded = decode_client_msg(msg.data, ProtocolVersion.V2)
            if isinstance(decoded, Ping):
                pings.set(pings.get() + 1)
                await ws.send_bytes(encode_relay_msg(Pong(decoded.data), ProtocolVersion.V2))

    async with fake_relay(handler, protocols=("iroh-relay-v2",)) as url:
        c = await RelayClient.connect(url, SecretKey.generate(), ping_interval=0.05)
        async with c:
            await asyncio.wait_for(pings.wait_for(lambda n: n >= 3), 5)
            assert c.is_connected and c.rtt is not None


async def test_receive_queue_bound_drops_and_counts() -> None:
    async with relay() as server:
        ka, kb = SecretKey.generate(), SecretKey.generate()
        a = await RelayClient.connect(server.http_url, ka)
        b = await RelayClient.connect(server.http_url, kb, recv_queue_max=2)
        try:
            for i in range(5):
                await a.send_datagram(kb.public(), bytes([i]))
            # a's pong comes back after the relay handled a's datagrams; b's pong is queued
            # behind them on b's connection. After both, b has read all five.
            await a.ping(timeout=5)
            await b.ping(timeout=5)
            got = [await b.recv(), await b.recv()]
            assert [m.datagrams.contents for m in got] == [b"\x00", b"\x01"]  # type: ignore[union-attr]
            assert b.dropped_recv == 3
        finally:
            await a.close()
            await b.close()
