"""A local Mainline DHT swarm on 127.0.0.1: our server-mode nodes and libtorrent sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aioiroh.dht.driver import Dht
from aioiroh.dht.routing import Addr

from .lt_support import LtNode, lt


@dataclass
class Swarm:
    ours: list[Dht] = field(default_factory=list)
    lts: list[LtNode] = field(default_factory=list)

    @property
    def addrs(self) -> list[Addr]:
        return [d.local_addr for d in self.ours] + [n.addr for n in self.lts]

    def bootstrap_list(self) -> list[Addr]:
        """A few of our own loopback nodes (never the public routers)."""
        return [d.local_addr for d in self.ours[:3]]

    def __len__(self) -> int:
        return len(self.ours) + len(self.lts)

    async def stop_ours(self, count: int) -> None:
        for d in self.ours[-count:]:
            await d.aclose()
        del self.ours[-count:]

    def stop_lts(self, count: int) -> None:
        for n in self.lts[-count:]:
            n.close()
        del self.lts[-count:]


@contextlib.asynccontextmanager
async def local_swarm(ours: int, libtorrent: int) -> AsyncIterator[Swarm]:
    """Start ``ours`` aioiroh server nodes and ``libtorrent`` sessions, all bootstrapped."""
    swarm = Swarm()
    try:
        first = await Dht.create(bind=("127.0.0.1", 0), bootstrap=[], server_mode=True)
        swarm.ours.append(first)
        for _ in range(ours - 1):
            swarm.ours.append(
                await Dht.create(
                    bind=("127.0.0.1", 0), bootstrap=[first.local_addr], server_mode=True
                )
            )
        await asyncio.gather(*(d.bootstrap() for d in swarm.ours[1:]))
        for _ in range(libtorrent):
            swarm.lts.append(LtNode(swarm.bootstrap_list()))
        if swarm.lts:
            await asyncio.gather(
                *(asyncio.to_thread(n.wait_alert, lt.dht_bootstrap_alert, 20) for n in swarm.lts)
            )
        # Second round: our nodes learn the libtorrent ones (which queried the first three).
        await asyncio.gather(*(d.bootstrap() for d in swarm.ours))
        yield swarm
    finally:
        for d in swarm.ours:
            await d.aclose()
        for n in swarm.lts:
            n.close()
