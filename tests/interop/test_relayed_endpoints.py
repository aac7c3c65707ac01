"""Endpoints connected through our relay server with relay-only addresses (issue: relay).

aioiroh -> Rust, Rust -> aioiroh and aioiroh <-> aioiroh; each connection is checked to run
on the relay path (NAT traversal is turned off so that loopback does not upgrade it). Also a
dual dial (relay + direct) where the server must answer one path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import iroh
import pytest

from aioiroh import Connection, Endpoint, EndpointAddr, RelayMode
from aioiroh.relay_server import RelayServer

from ..support.oracle import addr_to_rust, bind_rust

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

ALPN = b"aioiroh/relay-echo/0"


async def ours_echo(ep: Endpoint) -> None:
    while True:
        conn = await ep.accept()
        send, recv = await conn.accept_bi()
        await send.write_all(await recv.read_to_end(1 << 24))
        await send.finish()


async def echo_through(conn: Connection, data: bytes) -> bytes:
    send, recv = await conn.open_bi()
    await send.write_all(data)
    await send.finish()
    return await recv.read_to_end(len(data) + 1)


async def bind_ours(url: str, alpns: list[bytes] | None = None) -> Endpoint:
    # NAT traversal off: on loopback a relayed connection would otherwise upgrade to direct
    # at once (tests/interop/test_upgrade_rust.py covers that); here the relay path is tested.
    ep = await Endpoint.bind(
        alpns=alpns or [],
        bind_addr="127.0.0.1:0",
        relay_mode=RelayMode.custom([url]),
        nat_traversal=False,
    )
    await asyncio.wait_for(ep.online(), 10)
    return ep


def relay_only(ep: Endpoint) -> EndpointAddr:
    assert ep.home_relay is not None
    return EndpointAddr(ep.id, ep.home_relay, [])


async def test_ours_to_ours_relayed(relay_server: RelayServer) -> None:
    a = await bind_ours(relay_server.http_url, [ALPN])
    b = await bind_ours(relay_server.http_url)
    task = asyncio.create_task(ours_echo(a))
    try:
        conn = await b.connect(relay_only(a), ALPN)
        data = os.urandom(2 * 1024 * 1024)
        assert hashlib.sha256(await echo_through(conn, data)).digest() == (
            hashlib.sha256(data).digest()
        )
        (path,) = [p for p in conn.paths() if p.is_selected]
        assert path.is_relay and not path.is_ip
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await b.close()
        await a.close()


async def test_rust_to_ours_relayed(relay_server: RelayServer) -> None:
    a = await bind_ours(relay_server.http_url, [ALPN])
    rust = await bind_rust([], relay_urls=[relay_server.http_url])
    task = asyncio.create_task(ours_echo(a))
    try:
        await asyncio.wait_for(rust.online(), 10)
        conn = await rust.connect(addr_to_rust(relay_only(a)), ALPN)
        bi = await conn.open_bi()
        await bi.send().write_all(b"hello through the relay")
        await bi.send().finish()
        assert bytes(await bi.recv().read_to_end(100)) == b"hello through the relay"
        paths = conn.paths()
        selected = [p for p in paths if p.is_selected]
        assert selected and selected[0].is_relay
        conn.close(0, b"")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await rust.close()
        await a.close()


async def test_ours_to_rust_relayed(relay_server: RelayServer) -> None:
    rust = await bind_rust([ALPN], relay_urls=[relay_server.http_url])
    b = await bind_ours(relay_server.http_url)

    async def serve() -> None:
        inc = await rust.accept_next()
        conn = await (await inc.accept()).connect()
        bi = await conn.accept_bi()
        await bi.send().write_all(await bi.recv().read_to_end(1 << 20))
        await bi.send().finish()
        await conn.closed()

    task = asyncio.create_task(serve())
    try:
        await asyncio.wait_for(rust.online(), 10)
        raddr = rust.addr()
        assert raddr.relay_url() is not None
        target = EndpointAddr(str(raddr.id()), raddr.relay_url(), [])
        conn = await b.connect(target, ALPN)
        data = os.urandom(200_000)
        assert await echo_through(conn, data) == data
        (path,) = [p for p in conn.paths() if p.is_selected]
        assert path.is_relay
        assert relay_server.metrics is not None
        conn.close(0, b"")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await b.close()
        await rust.close()


async def test_dual_dial_server_answers_one_path(relay_server: RelayServer) -> None:
    """A Rust client dials relay and direct at once; our server keeps one path."""
    a = await bind_ours(relay_server.http_url, [ALPN])
    rust = await bind_rust([], relay_urls=[relay_server.http_url])
    task = asyncio.create_task(ours_echo(a))
    try:
        await asyncio.wait_for(rust.online(), 10)
        conn = await rust.connect(addr_to_rust(a.addr()), ALPN)
        bi = await conn.open_bi()
        await bi.send().write_all(b"both paths")
        await bi.send().finish()
        assert bytes(await bi.recv().read_to_end(100)) == b"both paths"
        assert len([p for p in conn.paths() if p.is_selected]) == 1
        conn.close(0, b"")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await rust.close()
        await a.close()


async def test_endpoint_addr_carries_home_relay(relay_server: RelayServer) -> None:
    ep = await bind_ours(relay_server.http_url)
    try:
        assert str(ep.addr().relay_url) == relay_server.http_url.rstrip("/") + "/"
        ticket = iroh.EndpointTicket.from_string(str(ep.ticket()))
        assert ticket.endpoint_addr().relay_url() == str(ep.home_relay)
    finally:
        await ep.close()
