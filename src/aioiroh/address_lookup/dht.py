"""``DhtAddressLookup``: pkarr signed packets on the BitTorrent Mainline DHT (BEP 44).

Rust: ``iroh-mainline-address-lookup``. The mutable item is keyed by the EndpointId with no
salt; ``seq`` is the pkarr timestamp (µs) and ``v`` the pkarr DNS packet, so the pkarr
signature *is* the BEP 44 signature and any pkarr client can read what we store. Publishing
is without CAS and repeated hourly (relay URLs only by default); resolving takes the most
recent ``seq`` among the responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Final

from ..base.key import EndpointId, SecretKey
from ..dht.driver import DEFAULT_BOOTSTRAP, Dht
from ..dht.routing import Addr
from ..dht.rpc import DhtError, MutableItem
from ..dns.endpoint_info import EndpointInfo
from ..dns.pkarr import DEFAULT_PKARR_TTL, SignedPacket, TimestampClock
from ..errors import DecodeError, SignatureError
from .base import AddressLookupError, AddressLookupItem

__all__ = ["DEFAULT_REPUBLISH_INTERVAL", "DhtAddressLookup", "item_to_packet", "packet_to_item"]

log = logging.getLogger(__name__)

DEFAULT_REPUBLISH_INTERVAL: Final = 3600.0
"""Seconds between republishes of unchanged info (Rust: hourly)."""
RETRY_DELAY: Final = 10.0
MAX_SEEN: Final = 1024
"""Endpoints whose newest seq we remember, to refuse rollbacks."""
PROVENANCE: Final = "mainline"


def packet_to_item(packet: SignedPacket) -> MutableItem:
    """The BEP 44 item carrying ``packet`` (same signature, seq = timestamp)."""
    return MutableItem(
        packet.public_key.to_bytes(), packet.timestamp, packet.dns_packet, packet.signature
    )


def item_to_packet(item: MutableItem) -> SignedPacket:
    """Rebuild and verify the pkarr signed packet; :class:`DecodeError`/:class:`SignatureError`."""
    if item.salt or not 0 <= item.seq < (1 << 64):
        raise DecodeError("not a pkarr item (salt or negative seq)")
    return SignedPacket.from_bytes(
        item.public_key + item.signature + item.seq.to_bytes(8, "big") + item.value
    )


class DhtAddressLookup:
    """Publish our endpoint to and resolve others from the Mainline DHT.

    Without ``secret_key`` it only resolves. ``dht`` shares an existing node; otherwise one is
    created on first use, bound to ``bind``, bootstrapped from ``bootstrap`` (the well-known
    routers by default), read-only unless ``server_mode``.
    """

    def __init__(
        self,
        secret_key: SecretKey | None = None,
        *,
        dht: Dht | None = None,
        bootstrap: Sequence[Addr] = DEFAULT_BOOTSTRAP,
        bind: Addr = ("0.0.0.0", 0),
        server_mode: bool = False,
        relay_only: bool = True,
        republish_interval: float = DEFAULT_REPUBLISH_INTERVAL,
        ttl: int = DEFAULT_PKARR_TTL,
    ) -> None:
        self._secret_key = secret_key
        self._dht = dht
        self._owns_dht = dht is None
        self._bootstrap = tuple(bootstrap)
        self._bind = bind
        self._server_mode = server_mode
        self._relay_only = relay_only
        self._republish_interval = republish_interval
        self._ttl = ttl
        self._clock = TimestampClock()
        self._dht_lock = asyncio.Lock()
        self._bootstrapped = False
        self._wanted: EndpointInfo | None = None
        self._changed = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._seen: OrderedDict[EndpointId, SignedPacket] = OrderedDict()
        self._closed = False
        self.stats: Counter[str] = Counter()
        """``published``, ``publish_failed``, ``resolved``, ``seq_rollback``, ``bad_packet``."""
        self.last_packet: SignedPacket | None = None

    async def start(self) -> None:
        """Create and bootstrap the DHT node now (the endpoint calls this at bind)."""
        await self.node()

    async def node(self) -> Dht:
        """The DHT node, created and bootstrapped on first use."""
        async with self._dht_lock:
            if self._dht is None:
                self._dht = await Dht.create(
                    bind=self._bind, bootstrap=self._bootstrap, server_mode=self._server_mode
                )
            if not self._bootstrapped:
                self._bootstrapped = True
                await self._dht.bootstrap()
            return self._dht

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, info: EndpointInfo) -> None:
        """Publish ``info`` (relay URLs only unless ``relay_only=False``) in the background."""
        if self._closed or self._secret_key is None:
            return
        if info.endpoint_id != self._secret_key.public():
            raise AddressLookupError("can only publish info about our own endpoint id")
        info = info.filtered(relay=True, direct=not self._relay_only)
        if info == self._wanted:
            return
        self._wanted = info
        self._changed.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dht-publish")

    async def wait_published(self, count: int = 1) -> SignedPacket:
        """Wait until at least ``count`` puts succeeded; return the last packet."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.stats["published"] >= count)
        assert self.last_packet is not None
        return self.last_packet

    async def _run(self) -> None:
        last_ok: bool | None = None  # None before the first attempt
        while True:
            delay = self._republish_interval if last_ok else RETRY_DELAY
            if last_ok is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
            else:
                await self._changed.wait()
            self._changed.clear()
            info = self._wanted
            assert info is not None and self._secret_key is not None
            packet = SignedPacket.from_endpoint_info(
                info,
                self._secret_key,
                timestamp=self._clock.next(time.time_ns() // 1000),
                ttl=self._ttl,
            )
            try:
                dht = await self.node()
                await dht.put_mutable(packet_to_item(packet))
            except (DhtError, OSError) as exc:
                last_ok = False
                self.stats["publish_failed"] += 1
                log.debug("dht publish failed: %r", exc)
            else:
                last_ok = True
                self.last_packet = packet
                self.stats["published"] += 1
            async with self._progress:
                self._progress.notify_all()

    # -- resolving ----------------------------------------------------------------------------

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        """One item from the DHT, or :class:`AddressLookupError`."""
        return self._resolve(endpoint_id)

    async def fetch(self, endpoint_id: EndpointId) -> SignedPacket:
        """The most recent valid signed packet for ``endpoint_id`` on the DHT.

        A packet older than one this lookup already returned is a rollback: it is dropped,
        counted, and the newer one returned instead.
        """
        try:
            dht = await self.node()
            items = await dht.get_mutable(endpoint_id.to_bytes())
        except (DhtError, OSError) as exc:
            raise AddressLookupError(f"DHT lookup failed: {exc}") from None
        best: SignedPacket | None = None
        for item in items:
            try:
                packet = item_to_packet(item)
            except (DecodeError, SignatureError):
                self.stats["bad_packet"] += 1
                continue
            if best is None or packet.more_recent_than(best):
                best = packet
        seen = self._seen.get(endpoint_id)
        if seen is not None and (best is None or seen.more_recent_than(best)):
            if best is not None:
                self.stats["seq_rollback"] += 1
            best = seen
        if best is None:
            raise AddressLookupError(f"{endpoint_id.fmt_short()} not found on the DHT")
        self._seen.pop(endpoint_id, None)
        self._seen[endpoint_id] = best
        while len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)
        self.stats["resolved"] += 1
        return best

    async def _resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem]:
        packet = await self.fetch(endpoint_id)
        try:
            info = packet.endpoint_info()
        except DecodeError as exc:
            raise AddressLookupError(f"invalid iroh records: {exc}") from None
        yield AddressLookupItem(info, PROVENANCE, packet.timestamp)

    async def aclose(self) -> None:
        """Stop publishing; close the DHT node if we created it."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_dht and self._dht is not None:
            await self._dht.aclose()
            self._dht = None

    def __repr__(self) -> str:
        who = self._secret_key.public().fmt_short() if self._secret_key else "resolve-only"
        return f"DhtAddressLookup({who})"
