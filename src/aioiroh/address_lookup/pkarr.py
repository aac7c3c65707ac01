"""Publishing to and resolving from a pkarr relay over HTTP (wire doc §6.3).

``PUT <pkarr_url>/<z32>`` with the signed packet minus its key publishes; ``GET`` the same URL
resolves. The publisher follows n0: relay URLs only by default, republish on every change and
every 5 minutes, retry failures after 1 s, 2 s, 3 s… (capped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

import aiohttp

from ..base.key import EndpointId, SecretKey
from ..dns.endpoint_info import EndpointInfo
from ..dns.pkarr import DEFAULT_PKARR_TTL, MAX_SIGNED_PACKET_SIZE, SignedPacket, TimestampClock
from ..errors import DecodeError, SignatureError
from .base import AddressLookupError, AddressLookupItem

__all__ = ["DEFAULT_REPUBLISH_INTERVAL", "PkarrPublisher", "PkarrResolver"]

log = logging.getLogger(__name__)

DEFAULT_REPUBLISH_INTERVAL: Final = 300.0
"""Seconds between republishes of unchanged info (iroh: 5 minutes)."""
RETRY_STEP: Final = 1.0
"""A failed PUT is retried after 1 s, then 2 s, 3 s, … (iroh's schedule)."""
MAX_RETRY_DELAY: Final = 60.0
"""Ceiling of the retry delay, so a long outage is retried at least once a minute."""
HTTP_TIMEOUT: Final = 10.0
"""Total time allowed for one PUT or GET, seconds."""
PROVENANCE: Final = "pkarr"
PKARR_CONTENT_TYPE: Final = "application/x-pkarr-signed-packet"


def _base(url: str) -> str:
    return url.rstrip("/")


class PkarrPublisher:
    """Publishes our :class:`EndpointInfo` as a signed packet to a pkarr relay.

    :meth:`publish` only records the wish; a background task (started on first use, inside a
    running event loop) does the PUTs. Call :meth:`aclose` to stop it.
    """

    def __init__(
        self,
        secret_key: SecretKey,
        pkarr_url: str,
        *,
        republish_interval: float = DEFAULT_REPUBLISH_INTERVAL,
        relay_only: bool = True,
        ttl: int = DEFAULT_PKARR_TTL,
    ) -> None:
        self._secret_key = secret_key
        self._url = f"{_base(pkarr_url)}/{secret_key.public().to_z32()}"
        self._republish_interval = republish_interval
        self._relay_only = relay_only
        self._ttl = ttl
        self._clock = TimestampClock()
        self._wanted: EndpointInfo | None = None
        self._changed = asyncio.Event()
        self._progress = asyncio.Condition()  # notified on every PUT success or failure
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.published_count = 0
        """Successful PUTs so far."""
        self.failed_count = 0
        """Failed PUT attempts so far."""
        self.last_packet: SignedPacket | None = None
        """The last packet the relay accepted."""

    def publish(self, info: EndpointInfo) -> None:
        """Publish ``info`` (filtered to relay URLs unless ``relay_only=False``)."""
        if self._closed:
            return
        if info.endpoint_id != self._secret_key.public():
            raise ValueError("can only publish info about our own endpoint id")
        info = info.filtered(relay=True, direct=not self._relay_only)
        if info == self._wanted:
            return
        self._wanted = info
        self._changed.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"pkarr-publish-{info.endpoint_id.fmt_short()}"
            )

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        """A publisher does not resolve."""
        return None

    async def wait_published(self, count: int = 1) -> SignedPacket:
        """Wait until at least ``count`` PUTs succeeded; return the last packet."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.published_count >= count)
        assert self.last_packet is not None
        return self.last_packet

    async def wait_failed(self, count: int = 1) -> None:
        """Wait until at least ``count`` PUT attempts failed (``failed_count >= count``).

        Useful to observe that the relay is unreachable before the first retry.
        """
        async with self._progress:
            await self._progress.wait_for(lambda: self.failed_count >= count)

    async def _run(self) -> None:
        while True:
            if self.published_count:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._republish_interval):
                        await self._changed.wait()
            else:
                await self._changed.wait()
            self._changed.clear()
            info = self._wanted
            assert info is not None
            attempt = 0
            while True:
                try:
                    await self._put(info)
                    break
                except (aiohttp.ClientError, TimeoutError, AddressLookupError) as exc:
                    attempt += 1
                    self.failed_count += 1
                    async with self._progress:
                        self._progress.notify_all()
                    delay = min(attempt * RETRY_STEP, MAX_RETRY_DELAY)
                    log.debug("pkarr publish failed (%r); retry in %.0f s", exc, delay)
                    # A change while waiting is published at once (with the new info).
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._changed.wait()
                    self._changed.clear()
                    info = self._wanted
                    assert info is not None

    async def _put(self, info: EndpointInfo) -> None:
        packet = SignedPacket.from_endpoint_info(
            info,
            self._secret_key,
            timestamp=self._clock.next(time.time_ns() // 1000),
            ttl=self._ttl,
        )
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT))
        async with self._session.put(
            self._url, data=packet.to_relay_body(), headers={"content-type": PKARR_CONTENT_TYPE}
        ) as resp:
            if not 200 <= resp.status < 300:
                text = (await resp.content.read(200)).decode("utf-8", "replace").strip()
                raise AddressLookupError(f"pkarr relay refused PUT: {resp.status} {text}")
        self.last_packet = packet
        self.published_count += 1
        async with self._progress:
            self._progress.notify_all()

    async def aclose(self) -> None:
        """Stop publishing and close the HTTP session."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        return f"PkarrPublisher({self._secret_key.public().fmt_short()}, {self._url!r})"


class PkarrResolver:
    """Resolves endpoint ids with ``GET <pkarr_url>/<z32>`` from a pkarr relay."""

    def __init__(self, pkarr_url: str) -> None:
        self._base = _base(pkarr_url)
        self._session: aiohttp.ClientSession | None = None

    def publish(self, info: EndpointInfo) -> None:
        """A resolver does not publish."""

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        """One item from the relay, or :class:`AddressLookupError`."""
        return self._resolve(endpoint_id)

    async def fetch(self, endpoint_id: EndpointId) -> SignedPacket:
        """GET and verify the signed packet for ``endpoint_id``."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT))
        url = f"{self._base}/{endpoint_id.to_z32()}"
        try:
            async with self._session.get(url) as resp:
                if resp.status == 404:
                    raise AddressLookupError(f"{endpoint_id.fmt_short()} not found at {url}")
                if resp.status != 200:
                    raise AddressLookupError(f"pkarr relay GET failed: HTTP {resp.status}")
                body = await resp.content.read(MAX_SIGNED_PACKET_SIZE)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AddressLookupError(f"pkarr relay unreachable: {exc!r}") from None
        try:
            return SignedPacket.from_relay_body(endpoint_id, body)
        except (DecodeError, SignatureError) as exc:
            raise AddressLookupError(f"invalid signed packet from relay: {exc}") from None

    async def _resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem]:
        packet = await self.fetch(endpoint_id)
        try:
            info = packet.endpoint_info()
        except DecodeError as exc:
            raise AddressLookupError(f"invalid iroh records: {exc}") from None
        yield AddressLookupItem(info, PROVENANCE, packet.timestamp)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        return f"PkarrResolver({self._base!r})"
