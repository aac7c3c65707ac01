"""Bad and hostile clients close only themselves, with a counted reason; the relay carries on."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from aioiroh.base.key import SecretKey
from aioiroh.relay.protocol.frames import Ping, Pong, Status, StatusCode, encode_client_msg
from aioiroh.relay_server import AccessConfig, RateLimit, RelayServer, ServerConfig
from tests.support.relay import RelayDenied, connect_client, open_ws


async def _still_serving(server: RelayServer) -> None:
    a = await connect_client(server.http_url)
    b = await connect_client(server.http_url)
    try:
        await a.send(b.endpoint_id, b"still here")
        assert (await b.recv_datagrams()).datagrams.contents == b"still here"
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xff", b"\x0e", b"\x04short", b"\x01" + bytes(97), b"\x09" + bytes(3)],
)
async def test_garbage_frame_closes_client(relay_server: RelayServer, garbage: bytes) -> None:
    client = await connect_client(relay_server.http_url)
    try:
        await client.send_raw(garbage)
        await client.wait_closed()
        assert client.ws.close_code == aiohttp.WSCloseCode.PROTOCOL_ERROR
        assert relay_server.metrics.protocol_errors == 1
    finally:
        await client.close()
    await _still_serving(relay_server)


async def test_oversized_message_closes_client(relay_server: RelayServer) -> None:
    client = await connect_client(relay_server.http_url)
    try:
        await client.send_raw(b"\x04" + bytes(1024 * 1024 + 10))
        await client.wait_closed()
        assert relay_server.metrics.oversized_messages == 1
    finally:
        await client.close()
    await _still_serving(relay_server)


async def test_bad_signature_denied(relay_server: RelayServer) -> None:
    with pytest.raises(RelayDenied, match="signature invalid"):
        await connect_client(relay_server.http_url, bad_signature=True)
    assert relay_server.metrics.auth_failures == 1
    assert relay_server.metrics.clients == 0
    await _still_serving(relay_server)


async def test_wrong_subprotocol_refused(relay_server: RelayServer) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await open_ws(relay_server.http_url, protocols=("chat",))
    assert info.value.status == 400
    assert relay_server.metrics.bad_upgrades == 1


async def test_garbage_instead_of_client_auth(relay_server: RelayServer) -> None:
    session, ws = await open_ws(relay_server.http_url)
    try:
        await ws.receive_bytes(timeout=5)  # the challenge
        await ws.send_bytes(encode_client_msg(Ping(b"12345678")))
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert relay_server.metrics.auth_failures == 1
    finally:
        await ws.close()
        await session.close()


async def test_handshake_timeout() -> None:
    async with RelayServer(ServerConfig(handshake_timeout=0.2)) as server:
        session, ws = await open_ws(server.http_url)
        try:
            await ws.receive_bytes(timeout=5)
            msg = await ws.receive(timeout=5)  # we never answer the challenge
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert server.metrics.auth_failures == 1
        finally:
            await ws.close()
            await session.close()


async def test_access_control() -> None:
    allowed, denied, stranger = (SecretKey.generate() for _ in range(3))
    access = AccessConfig(
        allow=frozenset({allowed.public(), denied.public()}),
        deny=frozenset({denied.public()}),
        tokens=frozenset({"sesame"}),
    )
    async with RelayServer(ServerConfig(access=access)) as server:
        auth = {"Authorization": "bearer sesame"}
        ok = await connect_client(server.http_url, allowed, headers=auth)
        await ok.close()
        ok = await connect_client(server.http_url + "/?token=sesame", allowed)
        await ok.close()
        for key, headers in [
            (allowed, None),  # no token
            (allowed, {"Authorization": "Bearer wrong"}),
            (denied, auth),
            (stranger, auth),
        ]:
            with pytest.raises(RelayDenied, match="not authorized"):
                await connect_client(server.http_url, key, headers=headers)
        assert server.metrics.access_denied == 4
        assert server.metrics.accepts == 2


@pytest.mark.timeout(30)
async def test_client_that_never_reads_is_dropped() -> None:
    config = ServerConfig(send_queue=64, write_timeout=0.5)
    async with RelayServer(config) as server:
        sender = await connect_client(server.http_url)
        stuck = await connect_client(server.http_url)
        # Stop reading on the stuck client's socket so TCP buffers fill up.
        assert stuck._reader is not None
        stuck._reader.cancel()
        protocol = stuck.ws._response.connection.protocol  # type: ignore[union-attr]
        protocol.pause_reading()
        try:
            chunk = b"\x00" * 60_000
            async with asyncio.timeout(20):
                while server.metrics.slow_clients == 0:
                    await sender.send(stuck.endpoint_id, chunk)
                    await asyncio.sleep(0)
                while server.metrics.clients != 1:
                    await sender.send_raw(encode_client_msg(Ping(b"busywait")))
                    await sender.recv(Pong)
            assert server.metrics.dropped_queue_full > 0
        finally:
            protocol.resume_reading()
            await sender.close()
            await stuck.close()
        await _still_serving(server)


async def test_rate_limit_throttles_and_reports() -> None:
    limit = RateLimit(bytes_per_second=200_000, max_burst_bytes=None)
    async with RelayServer(ServerConfig(rate_limit=limit)) as server:
        a = await connect_client(server.http_url)
        b = await connect_client(server.http_url)
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            chunk = b"r" * 60_000
            for _ in range(22):  # 1.3 MB: 1 MiB burst, then ~0.3 s of throttling
                await a.send(b.endpoint_id, chunk)
            for _ in range(22):
                await b.recv_datagrams()
            assert loop.time() - start >= 0.3
            assert await a.recv(Status) == Status(StatusCode.RATE_LIMITED)
            assert server.metrics.rate_limited >= 1
        finally:
            await a.close()
            await b.close()


@pytest.mark.timeout(90)
async def test_500_concurrent_clients(relay_server: RelayServer) -> None:
    sem = asyncio.Semaphore(50)

    async def one() -> object:
        async with sem:
            return await connect_client(relay_server.http_url)

    clients = await asyncio.gather(*(one() for _ in range(500)))
    try:
        assert relay_server.metrics.clients == 500
        # Every client sends to its neighbour; everybody receives exactly one datagram.
        for i, c in enumerate(clients):
            await c.send(clients[(i + 1) % 500].endpoint_id, i.to_bytes(4, "big"))  # type: ignore[attr-defined]
        for i, c in enumerate(clients):
            got = await c.recv_datagrams()  # type: ignore[attr-defined]
            assert int.from_bytes(got.datagrams.contents, "big") == (i - 1) % 500
    finally:
        await asyncio.gather(*(c.close() for c in clients))  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
async def test_restart_mid_transfer_clients_reconnect() -> None:
    server = RelayServer(ServerConfig())
    await server.start()
    port = server.port
    a = await connect_client(server.http_url)
    b = await connect_client(server.http_url)
    sender_done = asyncio.Event()

    async def pump() -> None:
        try:
            while True:
                await a.send(b.endpoint_id, b"d" * 1000)
                # A yield, not a wait: send_bytes suspends only when the socket pushes back.
                await asyncio.sleep(0)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            pass
        finally:
            sender_done.set()

    task = asyncio.create_task(pump())
    try:
        await b.recv_datagrams()
        await server.stop()
        await a.wait_closed()
        await b.wait_closed()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    finally:
        await a.close()
        await b.close()
    # Same port, new server: the same identities reconnect and traffic flows again.
    server2 = RelayServer(ServerConfig(port=port))
    await server2.start()
    try:
        a2 = await connect_client(server2.http_url, a.secret_key)
        b2 = await connect_client(server2.http_url, b.secret_key)
        try:
            await a2.send(b2.endpoint_id, b"again")
            assert (await b2.recv_datagrams()).datagrams.contents == b"again"
        finally:
            await a2.close()
            await b2.close()
    finally:
        await server2.stop()
