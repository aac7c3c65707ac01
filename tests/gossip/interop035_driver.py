"""aioiroh gossip peers and one Rust iroh-gossip 0.35 peer in one topic over ``/iroh-gossip/0``.

Run by ``test_rust035.py`` inside a fresh network namespace (only ``lo``), as
``python -m tests.gossip.interop035_driver PY035``; prints one JSON report line at the end.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aioiroh import Endpoint, EndpointAddr, Router
from aioiroh.base.key import PublicKey
from aioiroh.gossip import (
    ALPN_V0,
    ALPN_V1,
    Gossip,
    GossipTopic,
    NeighborDown,
    Received,
    TopicId,
)
from aioiroh.gossip import net as gossip_net
from aioiroh.gossip.messages import ProtoMessage, encode_proto_message

TOPIC = TopicId.from_name("aioiroh-rust035-interop")
RUST_PEER = Path(__file__).with_name("rust035_peer.py")


class RustPeer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))
            self.changed.set()

    async def wait(self, pred: Any) -> dict[str, Any]:
        while True:
            for ev in self.events:
                if pred(ev):
                    return ev
            self.changed.clear()
            await self.changed.wait()

    async def cmd(self, **fields: Any) -> None:
        assert self.proc.stdin is not None
        n = sum(1 for e in self.events if e.get("event") == "ok")
        self.proc.stdin.write((json.dumps(fields) + "\n").encode())
        await self.proc.stdin.drain()
        while sum(1 for e in self.events if e.get("event") == "ok") <= n:
            self.changed.clear()
            await self.changed.wait()


async def gone(topic: GossipTopic, peer: PublicKey) -> None:
    if peer not in topic.neighbors:
        return
    async for ev in topic:
        if ev == NeighborDown(peer):
            return


async def received(topic: GossipTopic, want: bytes) -> PublicKey:
    async for ev in topic:
        if isinstance(ev, Received) and ev.content == want:
            return ev.delivered_from
    raise AssertionError("topic closed")


# Every /iroh-gossip/0 frame the Rust peer sends us is decoded and re-encoded: the bytes must
# come out identical (our encoder matches Rust's serde + postcard for each message kind seen).
SEEN: dict[str, int] = {}
MISMATCHES: list[str] = []
_decode = gossip_net.decode_proto_message


def _checked_decode(body: bytes) -> ProtoMessage[PublicKey]:
    msg = _decode(body)
    kind = type(msg.message).__name__
    SEEN[kind] = SEEN.get(kind, 0) + 1
    if encode_proto_message(msg) != body:
        MISMATCHES.append(f"{kind}: {body.hex()}")
    return msg


gossip_net.decode_proto_message = _checked_decode  # type: ignore[assignment]


async def main(py035: str) -> dict[str, Any]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    proc = await asyncio.create_subprocess_exec(
        py035, str(RUST_PEER), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    rust = RustPeer(proc)
    routers: list[Router] = []
    report: dict[str, Any] = {}
    try:
        ready = await rust.wait(lambda e: e.get("event") == "ready")
        rust_id = PublicKey.parse(ready["id"])
        rust_addrs = [a for a in ready["addrs"] if a.startswith("127.")]
        report["rust_addrs"] = ready["addrs"]
        nodes: list[tuple[Endpoint, Gossip]] = []
        for _ in range(3):
            ep = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
            g = await Gossip.spawn(ep, legacy_v0=True)
            routers.append(Router.builder(ep).accept(ALPN_V1, g).accept(ALPN_V0, g).spawn())
            nodes.append((ep, g))
        # Rust 0.35 has no address lookup here: tell it where our peers are first.
        for ep, _ in nodes:
            addrs = [f"{h}:{p}" for h, p in ep.bound_sockets()]
            await rust.cmd(cmd="add_peer", id=str(ep.id), addrs=addrs)
        (ea, ga), (eb, gb), (_ec, gc) = nodes
        ta = await ga.subscribe(TOPIC)
        # Rust joins through a; b joins through Rust (we dial it: /1 is refused, /0 is used);
        # c joins through b.
        await rust.cmd(cmd="subscribe", topic=TOPIC.hex(), bootstrap=[str(ea.id)])
        tb = await gb.subscribe(TOPIC, bootstrap=[EndpointAddr(rust_id, None, rust_addrs)])
        async with asyncio.timeout(30):
            await asyncio.gather(ta.joined(), tb.joined())
            await rust.wait(lambda e: e.get("event") in ("joined", "neighbor_up"))
        tc = await gc.subscribe(TOPIC, bootstrap=[eb.addr()])
        async with asyncio.timeout(30):
            await tc.joined()
        report["a_neighbors"] = [str(p) for p in ta.neighbors]
        report["b_neighbors"] = [str(p) for p in tb.neighbors]

        # Rust -> ours.
        wanted = b"hello from rust 0.35"
        waits = [asyncio.create_task(received(t, wanted)) for t in (ta, tb, tc)]
        await rust.cmd(cmd="broadcast", data=wanted.hex())
        async with asyncio.timeout(30):
            froms = await asyncio.gather(*waits)
        report["ours_received_from"] = [str(f) for f in froms]

        # Ours -> Rust (c is not Rust's direct neighbor: it travels through b or a).
        ours = b"hello from aioiroh"
        await tc.broadcast(ours)
        async with asyncio.timeout(30):
            ev = await rust.wait(
                lambda e: e.get("event") == "received" and e.get("data") == ours.hex()
            )
        report["rust_received_from"] = ev["peer"]

        # Five more peers join through Rust: its active view (5) overflows, so it evicts
        # neighbors with ShuffleReply + Disconnect(alive), and everyone stays connected.
        extra: list[GossipTopic] = []
        for _ in range(5):
            ep = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
            g = await Gossip.spawn(ep, legacy_v0=True)
            routers.append(Router.builder(ep).accept(ALPN_V1, g).accept(ALPN_V0, g).spawn())
            addrs = [f"{h}:{p}" for h, p in ep.bound_sockets()]
            await rust.cmd(cmd="add_peer", id=str(ep.id), addrs=addrs)
            extra.append(
                await g.subscribe(TOPIC, bootstrap=[EndpointAddr(rust_id, None, rust_addrs)])
            )
        async with asyncio.timeout(30):
            await asyncio.gather(*(t.joined() for t in extra))
        late = b"after the evictions"
        waits = [asyncio.create_task(received(t, late)) for t in (ta, tb, tc, *extra)]
        await rust.cmd(cmd="broadcast", data=late.hex())
        async with asyncio.timeout(30):
            await asyncio.gather(*waits)
        report["late_delivered"] = len(waits)

        # More traffic both ways (duplicates make Plumtree prune and announce lazily), then
        # Rust leaves the topic: we must see it go.
        for i in range(5):
            await ta.broadcast(f"a{i}".encode())
            await tc.broadcast(f"c{i}".encode())
            await rust.cmd(cmd="broadcast", data=f"r{i}".encode().hex())
        async with asyncio.timeout(30):
            await rust.wait(lambda e: e.get("data") == b"c4".hex())
            await asyncio.gather(*(received(t, b"r4") for t in (ta, tc)))
        assert proc.stdin is not None
        proc.stdin.write(b'{"cmd": "quit"}\n')
        await proc.stdin.drain()
        async with asyncio.timeout(30):
            await asyncio.gather(*(gone(t, rust_id) for t in (ta, tb)))
        report["rust_gone"] = rust_id not in ta.neighbors and rust_id not in tb.neighbors
        report["rust_neighbor_events"] = [
            e for e in rust.events if e.get("event") in ("neighbor_up", "joined")
        ]
        report["rust_id"] = str(rust_id)
        report["our_ids"] = [str(ep.id) for ep, _ in nodes]
        report["v0_peers"] = [str(p) for p in gb._v0_peers | ga._v0_peers]
        report["rust_frames_by_kind"] = dict(SEEN)
        report["reencode_mismatches"] = MISMATCHES
    finally:
        await asyncio.gather(*(r.shutdown() for r in routers), return_exceptions=True)
        if proc.returncode is None:
            with_timeout = asyncio.wait_for(proc.wait(), 10)
            try:
                await with_timeout
            except TimeoutError:
                proc.kill()
                await proc.wait()
        rust.reader.cancel()
    return report


if __name__ == "__main__":
    result = asyncio.run(asyncio.wait_for(main(sys.argv[1]), 90))
    print("REPORT " + json.dumps(result))
