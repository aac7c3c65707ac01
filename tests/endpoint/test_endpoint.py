"""aioiroh <-> aioiroh on loopback: the endpoint API, streams, datagrams and errors."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from aioiroh import (
    AlpnMismatchError,
    AuthenticationError,
    ConnectionClosedByPeer,
    ConnectTimeout,
    EndpointClosed,
    LocallyClosed,
    ReadTooLong,
    SecretKey,
    StreamReset,
    StreamStopped,
)
from aioiroh.base.endpoint_addr import EndpointAddr
from aioiroh.base.ticket import EndpointTicket
from aioiroh.endpoint import Connection, Endpoint

pytestmark = pytest.mark.timeout(30)

ALPN = b"aioiroh/test/0"


@pytest.fixture
async def pair():
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0")
    client = await Endpoint.bind(bind_addr="127.0.0.1:0")
    yield server, client
    await client.close()
    await server.close()


async def connect_pair(server: Endpoint, client: Endpoint) -> tuple[Connection, Connection]:
    accepted = asyncio.create_task(server.accept())
    conn = await client.connect(server.addr(), ALPN)
    return conn, await accepted


async def test_identity_and_addr(pair) -> None:
    server, _ = pair
    addr = server.addr()
    assert addr.id == server.id
    assert ("127.0.0.1", server.bound_sockets()[0][1]) in addr.direct_addresses
    assert EndpointTicket.parse(str(server.ticket())).addr == addr


async def test_bi_stream_echo_and_ids(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    assert c.remote_id == server.id and s.remote_id == client.id
    assert c.alpn == ALPN == s.alpn
    send, recv = await c.open_bi()
    await send.write_all(b"ping")
    await send.finish()
    ssend, srecv = await s.accept_bi()
    assert await srecv.read_to_end(100) == b"ping"
    await ssend.write_all(b"pong")
    await ssend.finish()
    assert await recv.read_to_end(100) == b"pong"
    assert c.rtt is not None and c.rtt > 0
    paths = c.paths()
    assert any(p.is_selected and p.is_ip for p in paths)


@pytest.mark.parametrize("how", ["ticket", "ticket-str", "addr"])
async def test_connect_targets(pair, how) -> None:
    server, client = pair
    target = {
        "ticket": server.ticket(),
        "ticket-str": str(server.ticket()),
        "addr": server.addr(),
    }[how]
    accepted = asyncio.create_task(server.accept())
    conn = await client.connect(target, ALPN)
    await accepted
    assert conn.remote_id == server.id


async def test_uni_streams_and_read_helpers(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    send = await c.open_uni()
    await send.write_all(b"abcdef" * 1000)
    await send.finish()
    recv = await s.accept_uni()
    assert await recv.read_exact(3) == b"abc"
    assert await recv.read_to_end(10_000) == (b"abcdef" * 1000)[3:]
    assert await recv.read() == b""


async def test_read_to_end_limit(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    send = await c.open_uni()
    await send.write_all(b"x" * 5000)
    await send.finish()
    recv = await s.accept_uni()
    with pytest.raises(ReadTooLong):
        await recv.read_to_end(100)


async def test_stream_reset_and_stop(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    send, recv_half = await c.open_bi()
    await send.write_all(b"partial")
    ssend, srecv = await s.accept_bi()
    send.reset(77)
    with pytest.raises(StreamReset) as info:
        await srecv.read_to_end(1000)
    assert info.value.code == 77
    # The other direction: the reader stops, the writer learns the code.
    await ssend.write_all(b"data")
    await recv_half.read(4)
    recv_half.stop(13)
    assert await asyncio.wait_for(ssend.stopped(), 5) == 13
    # stopped() resolved together with the stream's error: the very next write fails.
    with pytest.raises(StreamStopped):
        await ssend.write_all(b"more" * 1000)


async def test_datagrams(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    c.send_datagram(b"d1")
    assert await asyncio.wait_for(s.read_datagram(), 5) == b"d1"
    s.send_datagram(b"d2")
    assert await asyncio.wait_for(c.read_datagram(), 5) == b"d2"
    with pytest.raises(ValueError):
        c.send_datagram(b"x" * 5000)


async def test_large_transfer(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    data = os.urandom(8 * 1024 * 1024)

    async def sink() -> bytes:
        _, recv = await s.accept_bi()
        return await recv.read_to_end(len(data))

    task = asyncio.create_task(sink())
    send, _ = await c.open_bi()
    await send.write_all(data)
    await send.finish()
    assert await task == data


async def test_many_streams(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)

    async def echo() -> None:
        while True:
            send, recv = await s.accept_bi()
            await send.write_all(await recv.read_to_end(10_000))
            await send.finish()

    task = asyncio.create_task(echo())

    async def one(i: int) -> bytes:
        send, recv = await c.open_bi()
        await send.write_all(str(i).encode())
        await send.finish()
        return await recv.read_to_end(100)

    try:
        assert await asyncio.gather(*(one(i) for i in range(80))) == [
            str(i).encode() for i in range(80)
        ]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_close_codes(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    c.close(42, b"bye now")
    err = await asyncio.wait_for(s.closed(), 5)
    assert isinstance(err, ConnectionClosedByPeer)
    assert (err.code, err.reason) == (42, "bye now")
    assert isinstance(await c.closed(), LocallyClosed)
    with pytest.raises(LocallyClosed):
        await c.open_bi()
    with pytest.raises(ConnectionClosedByPeer):
        await s.accept_bi()


async def test_alpn_mismatch(pair) -> None:
    server, client = pair
    with pytest.raises(AlpnMismatchError):
        await client.connect(server.addr(), b"something/else", timeout=5)


async def test_wrong_id(pair) -> None:
    server, client = pair
    wrong = EndpointAddr(SecretKey.generate().public(), None, server.addr().direct_addresses)
    with pytest.raises(AuthenticationError):
        await client.connect(wrong, ALPN, timeout=5)


async def test_unreachable_times_out(pair) -> None:
    _, client = pair
    # A bound UDP socket that never answers.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
        dead.bind(("127.0.0.1", 0))
        addr = EndpointAddr(SecretKey.generate().public(), None, [dead.getsockname()])
        with pytest.raises(ConnectTimeout):
            await client.connect(addr, ALPN, timeout=0.5)


async def test_closed_endpoint(pair) -> None:
    server, client = pair
    accept = asyncio.create_task(server.accept())
    await asyncio.sleep(0)
    await server.close()
    with pytest.raises(EndpointClosed):
        await accept
    with pytest.raises(EndpointClosed):
        await server.connect(client.addr(), ALPN)


async def test_endpoint_close_closes_connections(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    await client.close()
    err = await asyncio.wait_for(s.closed(), 5)
    assert isinstance(err, ConnectionClosedByPeer)
    assert isinstance(await c.closed(), LocallyClosed)


async def test_ipv6_loopback() -> None:
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6="[::1]:0")
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6="[::1]:0")
    try:
        v6_only = EndpointAddr(server.id, None, [a for a in server.bound_sockets() if ":" in a[0]])
        accepted = asyncio.create_task(server.accept())
        conn = await client.connect(v6_only, ALPN)
        await accepted
        assert conn.paths()[0].remote_addr.startswith("[::1]")
    finally:
        await client.close()
        await server.close()


async def test_stopped_returns_none_once_acknowledged(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    send = await c.open_uni()
    await send.write_all(b"z" * 300_000)
    await send.finish()
    recv = await s.accept_uni()
    reader = asyncio.create_task(recv.read_to_end(1_000_000))
    assert await asyncio.wait_for(send.stopped(), 10) is None
    assert len(await reader) == 300_000
