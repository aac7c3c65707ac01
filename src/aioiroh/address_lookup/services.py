"""``AddressLookupServices``: several lookups used as one (publish to all, merge resolves)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Final

from ..base.key import EndpointId
from ..dns.endpoint_info import EndpointInfo
from .base import AddressLookup, AddressLookupError, AddressLookupItem

__all__ = ["AddressLookupServices"]

log = logging.getLogger(__name__)

# Items buffered between the services' streams and the consumer; a slow consumer
# makes the services wait instead of growing memory.
MAX_PENDING_ITEMS: Final = 64
_DONE: Final = object()


async def _close_stream(stream: AsyncIterator[AddressLookupItem]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class AddressLookupServices:
    """Combine lookups: ``publish`` goes to every service, ``resolve`` runs them all
    concurrently and yields items as they arrive (in arrival order, not deduplicated).

    The merged stream raises :class:`AddressLookupError` only if every service failed and
    none produced an item.
    """

    def __init__(self, services: Iterable[AddressLookup] = ()) -> None:
        self._services: list[AddressLookup] = list(services)

    def add(self, service: AddressLookup) -> None:
        """Add another service."""
        self._services.append(service)

    @property
    def services(self) -> tuple[AddressLookup, ...]:
        """The combined services, in the order added."""
        return tuple(self._services)

    def publish(self, info: EndpointInfo) -> None:
        """Hand ``info`` to every service (each filters and publishes on its own)."""
        for service in self._services:
            try:
                service.publish(info)
            except Exception:
                log.exception("address lookup %r failed to publish", service)

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        """Merged stream of all services that can resolve; ``None`` if none can."""
        streams = [s.resolve(endpoint_id) for s in self._services]
        live = [s for s in streams if s is not None]
        if not live:
            return None
        return self._merge(endpoint_id, live)

    async def _merge(
        self, endpoint_id: EndpointId, streams: list[AsyncIterator[AddressLookupItem]]
    ) -> AsyncIterator[AddressLookupItem]:
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=MAX_PENDING_ITEMS)
        errors: list[BaseException] = []

        async def pump(stream: AsyncIterator[AddressLookupItem]) -> None:
            try:
                async for item in stream:
                    await queue.put(item)
            except Exception as exc:
                errors.append(exc)
            finally:
                await _close_stream(stream)
            await queue.put(_DONE)

        tasks = [
            asyncio.get_running_loop().create_task(pump(s), name="address-lookup-resolve")
            for s in streams
        ]
        yielded = 0
        try:
            finished = 0
            while finished < len(tasks):
                item = await queue.get()
                if item is _DONE:
                    finished += 1
                    continue
                assert isinstance(item, AddressLookupItem)
                yielded += 1
                yield item
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
        if yielded == 0 and errors:
            detail = "; ".join(repr(e) for e in errors)
            raise AddressLookupError(f"no lookup found {endpoint_id.fmt_short()}: {detail}")

    async def resolve_merged(
        self, endpoint_id: EndpointId, *, timeout: float
    ) -> EndpointInfo | None:
        """Everything found within ``timeout`` seconds, merged into one info (or ``None``)."""
        stream = self.resolve(endpoint_id)
        if stream is None:
            return None
        merged: EndpointInfo | None = None
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            with contextlib.suppress(TimeoutError, AddressLookupError):
                async with asyncio.timeout(timeout):
                    async for item in stream:
                        info = item.endpoint_info
                        merged = info if merged is None else merged.merged(info)
        return merged

    async def aclose(self) -> None:
        """Close every service."""
        for service in self._services:
            try:
                await service.aclose()
            except Exception:
                log.exception("closing address lookup %r failed", service)

    def __repr__(self) -> str:
        return f"AddressLookupServices({self._services!r})"
