"""The DNS server's Mainline DHT fallback (iroh-dns-server ``[mainline] enabled``).

Only DNS/DoH answers about keys missing from the local store consult the DHT; results are
cached (300 s, bounded) and never written to the store, so ``GET /pkarr`` and the records we
serve as a relay stay exactly what clients PUT. We never publish on others' behalf: the DHT
node is read-only and only runs ``get``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Final

from ..address_lookup.base import AddressLookupError
from ..address_lookup.dht import DhtAddressLookup
from ..base.key import PublicKey
from ..dht.driver import DEFAULT_BOOTSTRAP
from ..dht.routing import Addr
from ..dns.pkarr import SignedPacket

__all__ = ["CACHE_TTL", "NEGATIVE_TTL", "DhtFallback"]

CACHE_TTL: Final = 300.0
"""Seconds a packet found on the DHT is served from cache (as iroh-dns-server)."""
NEGATIVE_TTL: Final = 30.0
"""Seconds a miss is remembered, so repeated queries for an unknown key cost one lookup."""
MAX_CACHE: Final = 10_000
MAX_INFLIGHT: Final = 64
"""DHT lookups running at once; queries beyond that are answered from the store only."""
LOOKUP_TIMEOUT: Final = 5.0


class DhtFallback:
    """Resolve keys missing locally through the DHT, with a bounded TTL cache."""

    def __init__(
        self,
        *,
        bootstrap: Sequence[Addr] = DEFAULT_BOOTSTRAP,
        bind: Addr = ("0.0.0.0", 0),
        cache_ttl: float = CACHE_TTL,
        max_cache: int = MAX_CACHE,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self._lookup = DhtAddressLookup(bootstrap=bootstrap, bind=bind)
        self._cache_ttl = cache_ttl
        self._max_cache = max_cache
        self._max_inflight = max_inflight
        self._cache: OrderedDict[PublicKey, tuple[float, SignedPacket | None]] = OrderedDict()
        self._inflight: dict[PublicKey, asyncio.Future[SignedPacket | None]] = {}
        self.stats: Counter[str] = Counter()
        """``hit``, ``miss``, ``found``, ``not_found``, ``overloaded``."""

    async def start(self) -> None:
        """Bind and bootstrap the DHT node."""
        await self._lookup.start()

    async def get(self, key: PublicKey) -> SignedPacket | None:
        """The packet for ``key`` from cache or the DHT; ``None`` if not found."""
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None:
            if cached[0] > now:
                self.stats["hit"] += 1
                return cached[1]
            del self._cache[key]
        self.stats["miss"] += 1
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if len(self._inflight) >= self._max_inflight:
            self.stats["overloaded"] += 1
            return None
        fut: asyncio.Future[SignedPacket | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        packet: SignedPacket | None = None
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                packet = await self._lookup.fetch(key)
        except (AddressLookupError, TimeoutError):
            packet = None
        finally:
            del self._inflight[key]
            fut.set_result(packet)
        self.stats["found" if packet else "not_found"] += 1
        ttl = self._cache_ttl if packet is not None else min(NEGATIVE_TTL, self._cache_ttl)
        self._cache[key] = (time.monotonic() + ttl, packet)
        while len(self._cache) > self._max_cache:
            self._cache.popitem(last=False)
        return packet

    def __len__(self) -> int:
        return len(self._cache)

    async def aclose(self) -> None:
        """Close the DHT node."""
        await self._lookup.aclose()
