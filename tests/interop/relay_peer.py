"""A relayed echo-hash peer for namespace tests, in either implementation.

``python -m tests.interop.relay_peer IMPL serve BIND_IP RELAY_URL`` prints
``{"id": ...}`` once online, accepts one connection, reads one bi-stream to its end and
answers with the sha256 of what it got. ``... IMPL connect BIND_IP RELAY_URL PEER_ID SIZE``
sends SIZE random bytes to PEER_ID through the relay only and prints
``{"ok": bool, "relayed": bool}``. IMPL is ``ours`` (aioiroh) or ``rust`` (PyPI iroh).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from typing import Any

ALPN = b"aioiroh/relay-hash/0"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def ours(role: str, ip: str, relay: str, peer: str | None, size: int) -> None:
    from aioiroh import Endpoint, EndpointAddr, RelayMode

    ep = await Endpoint.bind(
        alpns=[ALPN] if role == "serve" else [],
        bind_addr=f"{ip}:0",
        bind_addr_v6=False,
        relay_mode=RelayMode.custom([relay]),
    )
    try:
        await asyncio.wait_for(ep.online(), 30)
        if role == "serve":
            emit({"id": str(ep.id)})
            conn = await ep.accept()
            send, recv = await conn.accept_bi()
            digest = hashlib.sha256(await recv.read_to_end(1 << 30)).hexdigest()
            await send.write_all(digest.encode())
            await send.finish()
            await conn.closed()
        else:
            assert peer is not None
            conn = await ep.connect(EndpointAddr(peer, relay, []), ALPN, timeout=30)
            data = os.urandom(size)
            send, recv = await conn.open_bi()
            await send.write_all(data)
            await send.finish()
            digest = (await recv.read_to_end(100)).decode()
            relayed = all(p.is_relay for p in conn.paths() if p.is_selected)
            conn.close()
            emit({"ok": digest == hashlib.sha256(data).hexdigest(), "relayed": relayed})
    finally:
        await ep.close()


async def rust(role: str, ip: str, relay: str, peer: str | None, size: int) -> None:
    import iroh

    b = iroh.EndpointBuilder()
    b.apply_minimal()
    b.relay_mode(iroh.RelayMode.custom_from_urls([relay]))
    b.bind_addr(f"{ip}:0")
    b.alpns([ALPN] if role == "serve" else [])
    ep = await b.bind()
    try:
        await asyncio.wait_for(ep.online(), 30)
        if role == "serve":
            emit({"id": str(ep.id())})
            inc = await ep.accept_next()
            conn = await (await inc.accept()).connect()
            bi = await conn.accept_bi()
            digest = hashlib.sha256(bytes(await bi.recv().read_to_end(1 << 30))).hexdigest()
            await bi.send().write_all(digest.encode())
            await bi.send().finish()
            await conn.closed()
        else:
            assert peer is not None
            addr = iroh.EndpointAddr(iroh.EndpointId.from_string(peer), relay, [])
            conn = await asyncio.wait_for(ep.connect(addr, ALPN), 30)
            data = os.urandom(size)
            bi = await conn.open_bi()
            await bi.send().write_all(data)
            await bi.send().finish()
            digest = bytes(await bi.recv().read_to_end(100)).decode()
            relayed = all(p.is_relay for p in conn.paths() if p.is_selected)
            conn.close(0, b"done")
            emit({"ok": digest == hashlib.sha256(data).hexdigest(), "relayed": relayed})
    finally:
        await ep.close()


if __name__ == "__main__":
    impl, role, ip, relay = sys.argv[1:5]
    peer = sys.argv[5] if len(sys.argv) > 5 else None
    size = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    asyncio.run({"ours": ours, "rust": rust}[impl](role, ip, relay, peer, size))
