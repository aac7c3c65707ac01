"""``MemoryLookup``: addresses known in-process (tickets, tests, manual configuration)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from ..base.key import EndpointId
from ..dns.endpoint_info import EndpointInfo
from .base import AddressLookupItem

__all__ = ["MemoryLookup"]

PROVENANCE = "memory"


class MemoryLookup:
    """A dict of :class:`EndpointInfo` by id; ``resolve`` yields the stored entry, if any."""

    def __init__(self, infos: list[EndpointInfo] | None = None) -> None:
        self._entries: dict[EndpointId, tuple[EndpointInfo, int]] = {}
        for info in infos or []:
            self.add(info)

    def add(self, info: EndpointInfo) -> None:
        """Add or merge addresses for ``info.endpoint_id`` (new addresses first)."""
        now = time.time_ns() // 1000
        old = self._entries.get(info.endpoint_id)
        merged = info if old is None else info.merged(old[0])
        self._entries[info.endpoint_id] = (merged, now)

    def set(self, info: EndpointInfo) -> None:
        """Replace what is known about ``info.endpoint_id``."""
        self._entries[info.endpoint_id] = (info, time.time_ns() // 1000)

    def remove(self, endpoint_id: EndpointId) -> EndpointInfo | None:
        """Forget an endpoint; return what was stored."""
        entry = self._entries.pop(endpoint_id, None)
        return entry[0] if entry else None

    def get(self, endpoint_id: EndpointId) -> EndpointInfo | None:
        """What is stored for ``endpoint_id``."""
        entry = self._entries.get(endpoint_id)
        return entry[0] if entry else None

    def publish(self, info: EndpointInfo) -> None:
        """Memory lookup does not publish our own info."""

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        """Yield the stored entry (if any) once."""
        entry = self._entries.get(endpoint_id)
        return self._one(entry)

    async def _one(
        self, entry: tuple[EndpointInfo, int] | None
    ) -> AsyncIterator[AddressLookupItem]:
        if entry is not None:
            yield AddressLookupItem(entry[0], PROVENANCE, entry[1])

    async def aclose(self) -> None:
        """Nothing to release."""

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryLookup({len(self._entries)} endpoints)"
