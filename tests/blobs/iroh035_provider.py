"""Run under the iroh 0.35 venv: serve one blob from a file with Rust iroh-blobs.

Prints one JSON line {hash, node_id, addrs}; then reads one line "node_id addr" (our endpoint,
which 0.35 must know before it accepts our packets), registers it, prints "ok", and serves
until stdin closes.
"""

import asyncio
import json
import sys

import iroh


async def main() -> None:
    opts = iroh.NodeOptions(ipv4_addr="127.0.0.1:0", node_discovery=iroh.NodeDiscoveryConfig.NONE)
    node = await iroh.Iroh.memory_with_options(opts)
    with open(sys.argv[1], "rb") as f:
        outcome = await node.blobs().add_bytes(f.read())
    addr = await node.net().node_addr()
    print(
        json.dumps(
            {
                "hash": bytes(outcome.hash.to_bytes()).hex(),
                "node_id": str(await node.net().node_id()),
                "addrs": [a for a in addr.direct_addresses() if a.startswith("127.")],
            }
        ),
        flush=True,
    )
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    peer_id, peer_addr = line.split()
    await node.net().add_node_addr(
        iroh.NodeAddr(iroh.PublicKey.from_string(peer_id), None, [peer_addr])
    )
    print("ok", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
