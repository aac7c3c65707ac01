"""An aioiroh endpoint with only local discovery (mDNS), run inside a lab namespace.

``python -m tests.address_lookup.mdns_peer serve BIND_IP`` prints ``{"id": ...}`` and echoes
one bi-stream; ``... connect BIND_IP PEER_ID`` finds PEER_ID by mDNS alone, sends a message
and prints ``{"echo": ..., "path": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aioiroh import Endpoint, SecretKey
from aioiroh.address_lookup.mdns import MdnsAddressLookup

ALPN = b"aioiroh/mdns-lab/0"


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(role: str, ip: str, peer: str | None) -> None:
    key = SecretKey.generate()
    mdns = MdnsAddressLookup(key.public(), interface=ip, query_interval=0.25)
    ep = await Endpoint.bind(
        key,
        alpns=[ALPN] if role == "serve" else [],
        bind_addr=f"{ip}:0",
        bind_addr_v6=False,
        address_lookup=[mdns],
    )
    try:
        if role == "serve":
            emit({"id": str(ep.id)})
            conn = await ep.accept()
            send, recv = await conn.accept_bi()
            await send.write_all(await recv.read_to_end(1000))
            await send.finish()
            await conn.closed()
        else:
            assert peer is not None
            conn = await ep.connect(peer, ALPN, timeout=20)
            send, recv = await conn.open_bi()
            await send.write_all(b"found you on the LAN")
            await send.finish()
            back = await recv.read_to_end(1000)
            path = next(p.remote_addr for p in conn.paths() if p.is_selected)
            conn.close()
            emit({"echo": back.decode(), "path": path})
    finally:
        await ep.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
