"""A PyPI-iroh (Rust) endpoint driven by JSON lines; run inside a lab namespace.

``python -m tests.lab.iroh_echo_peer BIND_ADDR`` binds with relays disabled and prints
``{"ready": true, "id": ..., "addrs": [...]}``. Then, one JSON command per stdin line:

- ``{"cmd": "serve"}``: accept one connection, echo one bi-stream, reply ``{"served": id}``;
- ``{"cmd": "connect", "id": ID, "addrs": [...], "data": TEXT}``: open a bi-stream, send
  TEXT, reply ``{"echo": TEXT_BACK}``.

EOF on stdin closes the endpoint and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import iroh

ALPN = b"natlab/echo/0"
MAX_MSG = 1 << 16


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve(ep: iroh.Endpoint) -> str:
    incoming = await ep.accept_next()
    assert incoming is not None
    accepting = await incoming.accept()
    conn = await accepting.connect()
    bi = await conn.accept_bi()
    data = await bi.recv().read_to_end(MAX_MSG)
    send = bi.send()
    await send.write_all(data)
    await send.finish()
    await conn.closed()  # the client closes once it has read the echo
    return conn.remote_id().__str__()


async def connect(ep: iroh.Endpoint, peer_id: str, addrs: list[str], data: str) -> str:
    addr = iroh.EndpointAddr(iroh.EndpointId.from_string(peer_id), None, addrs)
    conn = await ep.connect(addr, ALPN)
    bi = await conn.open_bi()
    send = bi.send()
    await send.write_all(data.encode())
    await send.finish()
    back = await bi.recv().read_to_end(MAX_MSG)
    conn.close(0, b"done")
    return back.decode()


async def main(bind_addr: str) -> None:
    opts = iroh.EndpointOptions(
        preset=iroh.preset_minimal(),
        bind_addr=bind_addr,
        relay_mode=iroh.RelayMode.disabled(),
        alpns=[ALPN],
    )
    ep = await iroh.Endpoint.bind(opts)
    emit({"ready": True, "id": str(ep.id()), "addrs": ep.bound_sockets()})
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            if cmd["cmd"] == "serve":
                emit({"served": await serve(ep)})
            elif cmd["cmd"] == "connect":
                emit({"echo": await connect(ep, cmd["id"], cmd["addrs"], cmd["data"])})
            else:
                emit({"error": f"unknown command {cmd['cmd']!r}"})
    finally:
        await ep.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
