"""Relay -> direct upgrade against Rust iroh (the multipath issue; milestones M5 and M6).

Each connection is dialed with a relay-only address through our relay, so it starts relayed;
n0 NAT traversal then finds the direct loopback path and both sides select it within 2 s.
Data sent before, during and after the switch must arrive intact.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from aioiroh import Endpoint, EndpointAddr, RelayMode
from aioiroh.relay_server import RelayServer

from ..support.oracle import addr_to_rust, bind_rust

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

ALPN = b"aioiroh/upgrade/0"
UPGRADE_WITHIN = 2.0


async def bind_ours(url: str, alpns: list[bytes] | None = None) -> Endpoint:
    ep = await Endpoint.bind(
        alpns=alpns or [], bind_addr="127.0.0.1:0", relay_mode=RelayMode.custom([url])
    )
    await asyncio.wait_for(ep.online(), 10)
    return ep


def relay_only(ep: Endpoint) -> EndpointAddr:
    assert ep.home_relay is not None
    return EndpointAddr(ep.id, ep.home_relay, [])


def rust_selected_ip(conn: object) -> bool:
    return any(p.is_selected and p.is_ip for p in conn.paths())  # type: ignore[attr-defined]


async def wait_for(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)  # polling Rust's paths(): it has no awaitable change here


async def test_rust_client_upgrades_to_direct_with_our_server(
    relay_server: RelayServer,
) -> None:
    ours = await bind_ours(relay_server.http_url, [ALPN])
    rust = await bind_rust([], relay_urls=[relay_server.http_url])
    data = os.urandom(3 * 1024 * 1024)
    try:
        await asyncio.wait_for(rust.online(), 10)
        accept = asyncio.create_task(ours.accept())
        conn = await rust.connect(addr_to_rust(relay_only(ours)), ALPN)
        server_conn = await asyncio.wait_for(accept, 10)
        started = time.monotonic()
        assert any(p.is_relay for p in conn.paths())
        bi = await conn.open_bi()

        async def serve() -> bytes:
            send, recv = await server_conn.accept_bi()
            got = await recv.read_to_end(len(data) + 1)
            await send.write_all(hashlib.sha256(got).digest())
            await send.finish()
            return got

        server_task = asyncio.create_task(serve())
        # Before the switch (relayed), during it, and after it.
        await bi.send().write_all(data[: 1 << 20])
        await wait_for(lambda: rust_selected_ip(conn), UPGRADE_WITHIN)
        assert time.monotonic() - started < UPGRADE_WITHIN
        await wait_for(
            lambda: any(p.is_selected and p.is_ip for p in server_conn.paths()), UPGRADE_WITHIN
        )
        await bi.send().write_all(data[1 << 20 :])
        await bi.send().finish()
        digest = bytes(await bi.recv().read_to_end(100))
        assert digest == hashlib.sha256(data).digest()
        assert await server_task == data
        ours_paths = server_conn.paths()
        assert any(p.is_relay for p in ours_paths)  # the relay stays as backup
        (selected,) = [p for p in ours_paths if p.is_selected]
        assert selected.is_ip
        conn.close(0, b"")
    finally:
        await rust.close()
        await ours.close()


async def test_our_client_upgrades_to_direct_with_rust_server(
    relay_server: RelayServer,
) -> None:
    rust = await bind_rust([ALPN], relay_urls=[relay_server.http_url])
    ours = await bind_ours(relay_server.http_url)
    data = os.urandom(2 * 1024 * 1024)

    async def serve() -> None:
        inc = await rust.accept_next()
        conn = await (await inc.accept()).connect()
        bi = await conn.accept_bi()
        await bi.send().write_all(await bi.recv().read_to_end(1 << 24))
        await bi.send().finish()
        await wait_for(lambda: rust_selected_ip(conn), 10)
        await conn.closed()

    task = asyncio.create_task(serve())
    try:
        await asyncio.wait_for(rust.online(), 10)
        raddr = rust.addr()
        target = EndpointAddr(str(raddr.id()), raddr.relay_url(), [])
        conn = await ours.connect(target, ALPN)
        started = time.monotonic()
        assert [p.is_relay for p in conn.paths()] == [True]
        events = conn.path_events()
        send, recv = await conn.open_bi()
        await send.write_all(data[: 1 << 20])
        async with asyncio.timeout(UPGRADE_WITHIN):
            async for ev in events:
                if ev.kind == "selected" and not hasattr(ev.remote, "url"):
                    break
        assert time.monotonic() - started < UPGRADE_WITHIN
        await events.aclose()
        await send.write_all(data[1 << 20 :])
        await send.finish()
        assert await recv.read_to_end(len(data) + 1) == data
        (selected,) = [p for p in conn.paths() if p.is_selected]
        assert selected.is_ip
        assert any(p.is_relay for p in conn.paths())
        conn.close(0, b"")
        await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ours.close()
        await rust.close()
