"""A Rust iroh-gossip 0.35 peer (PyPI ``iroh==0.35.0``), driven over stdin/stdout JSON lines.

Run with the ``.venv-iroh035`` interpreter inside a network namespace that has only loopback
(the 0.35 bindings cannot turn off n0's relays, so they must not see any other network).

Commands: ``{"cmd": "add_peer", "id", "addrs"}``, ``{"cmd": "subscribe", "topic", "bootstrap"}``,
``{"cmd": "broadcast", "data"}`` (hex), ``{"cmd": "quit"}``. Events printed: ``ready``,
``neighbor_up``, ``neighbor_down``, ``joined``, ``received``, ``lagged``, ``error``, ``ok``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import iroh  # type: ignore[import-not-found]
from iroh import iroh_ffi  # type: ignore[import-not-found]


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Callback:
    async def on_message(self, msg: Any) -> None:
        kind = msg.type()
        if kind == iroh.MessageType.NEIGHBOR_UP:
            emit(event="neighbor_up", peer=msg.as_neighbor_up())
        elif kind == iroh.MessageType.NEIGHBOR_DOWN:
            emit(event="neighbor_down", peer=msg.as_neighbor_down())
        elif kind == iroh.MessageType.JOINED:
            emit(event="joined", peers=list(msg.as_joined()))
        elif kind == iroh.MessageType.RECEIVED:
            content = msg.as_received()
            emit(event="received", data=bytes(content.content).hex(), peer=content.delivered_from)
        elif kind == iroh.MessageType.LAGGED:
            emit(event="lagged")
        else:
            emit(event="error", error=str(msg.as_error()))


async def main() -> None:
    iroh_ffi.uniffi_set_event_loop(asyncio.get_running_loop())
    opts = iroh.NodeOptions(
        node_discovery=iroh.NodeDiscoveryConfig.NONE,
        ipv4_addr="127.0.0.1:0",
        ipv6_addr="[::1]:0",
    )
    node = await iroh.Iroh.memory_with_options(opts)
    net = node.net()
    addr = await net.node_addr()
    emit(event="ready", id=await net.node_id(), addrs=list(addr.direct_addresses()))
    sender = None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        op = cmd["cmd"]
        if op == "add_peer":
            key = iroh.PublicKey.from_string(cmd["id"])
            await net.add_node_addr(iroh.NodeAddr(key, None, cmd["addrs"]))
        elif op == "subscribe":
            sender = await node.gossip().subscribe(
                bytes.fromhex(cmd["topic"]), cmd["bootstrap"], Callback()
            )
        elif op == "broadcast":
            assert sender is not None
            await sender.broadcast(bytes.fromhex(cmd["data"]))
        elif op == "quit":
            break
        emit(event="ok", cmd=op)
    await node.node().shutdown()


if __name__ == "__main__":
    asyncio.run(main())
