"""aioiroh <-> aioiroh over real sockets: relay -> direct upgrade, fallback and re-upgrade.

Both endpoints reach each other through our relay (relay-only address), holepunch to the
loopback path, then the direct path is cut with the socket's test blackhole: the connection
must fall back to the relay within the (shortened) path idle time with its stream alive, and
upgrade again once the path is restored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from aioiroh import Connection, Endpoint, EndpointAddr, RelayMode
from aioiroh.relay_server import RelayServer
from aioiroh.socket.paths import IpPath

pytestmark = [pytest.mark.timeout(60)]

ALPN = b"aioiroh/mp-e2e/0"
PATH_IDLE = 1.0


async def bind(url: str, alpns: list[bytes] | None = None) -> Endpoint:
    ep = await Endpoint.bind(
        alpns=alpns or [], bind_addr="127.0.0.1:0", relay_mode=RelayMode.custom([url])
    )
    await asyncio.wait_for(ep.online(), 10)
    return ep


async def selected_kind(conn: Connection, want_relay: bool, timeout: float) -> float:
    """Wait until the selected path is relay (or IP); returns how long it took."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        async for ev in conn.path_events():
            if ev.kind == "selected" and (hasattr(ev.remote, "url") == want_relay):
                return time.monotonic() - start
    raise AssertionError("path events ended")


async def test_upgrade_fallback_and_reupgrade(relay_server: RelayServer) -> None:
    a = await bind(relay_server.http_url, [ALPN])
    b = await bind(relay_server.http_url)
    try:
        assert a.home_relay is not None
        accept = asyncio.create_task(a.accept())
        conn = await b.connect(EndpointAddr(a.id, a.home_relay, []), ALPN)
        server = await asyncio.wait_for(accept, 10)
        for c in (conn, server):
            c._driver.path_idle_timeout = PATH_IDLE
        assert await selected_kind(conn, want_relay=False, timeout=2.0) < 2.0
        await selected_kind(server, want_relay=False, timeout=2.0)

        send, recv = await conn.open_bi()
        data = os.urandom(1 << 20)
        await send.write_all(data[: 1 << 19])
        ps, pr = await server.accept_bi()
        first = await pr.read(1 << 19)
        assert first

        # Cut the direct path in both directions on both sockets.
        direct = [p for p in conn.paths() if p.is_ip and p.is_selected]
        assert direct
        cut: set[IpPath] = set()
        for ep in (a, b):
            for host, port in ep.bound_sockets():
                cut.add(IpPath("127.0.0.1" if host == "0.0.0.0" else host, port))
        for ep in (a, b):
            ep._socket.blackholed = set(cut)
        took = await selected_kind(conn, want_relay=True, timeout=PATH_IDLE + 5)
        assert took < PATH_IDLE + 5
        await send.write_all(data[1 << 19 :])
        await send.finish()
        rest = await pr.read_to_end(len(data))
        assert hashlib.sha256(first + rest).digest() == hashlib.sha256(data).digest()
        assert conn.close_reason() is None

        # Restore: a new round (rate-limited to one per 5 s) finds the direct path again.
        for ep in (a, b):
            ep._socket.blackholed = set()
        assert await selected_kind(conn, want_relay=False, timeout=8.0) < 8.0
        await ps.write_all(b"after the re-upgrade")
        await ps.finish()
        assert await recv.read_to_end(100) == b"after the re-upgrade"
    finally:
        await b.close()
        await a.close()
