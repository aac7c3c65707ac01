"""Caps on concurrent TCP connections, in total and per source IP, for aiohttp servers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

__all__ = ["ConnectionGate", "GatedAppRunner"]


class ConnectionGate:
    """Counts open connections; refuses beyond ``max_total`` or ``max_per_ip`` (pure)."""

    def __init__(self, max_total: int, max_per_ip: int) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.open = 0
        self.refused_total = 0
        self.refused_per_ip = 0
        self._per_ip: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        """Take a slot for a connection from ``ip``; False (and counted) when over a cap."""
        if self.open >= self.max_total:
            self.refused_total += 1
            return False
        count = self._per_ip.get(ip, 0)
        if count >= self.max_per_ip:
            self.refused_per_ip += 1
            return False
        self._per_ip[ip] = count + 1
        self.open += 1
        return True

    def release(self, ip: str) -> None:
        """A connection that held a slot ended."""
        self.open -= 1
        left = self._per_ip.pop(ip, 1) - 1
        if left > 0:
            self._per_ip[ip] = left


class _Gated(asyncio.Protocol):
    """Delegates to the real protocol once the gate admitted the connection."""

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate) -> None:
        self._inner = inner
        self._gate = gate
        self._ip: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        if not self._gate.acquire(ip):
            transport.close()
            return
        self._ip = ip
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ip is not None:
            self._gate.release(self._ip)
            self._ip = None
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._ip is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._ip is not None else None

    def pause_writing(self) -> None:
        if self._ip is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._ip is not None:
            self._inner.resume_writing()


class GatedAppRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose sites admit connections through ``gate``."""

    def __init__(self, app: web.Application, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.gate = gate

    @property
    def server(self) -> Any:
        inner = super().server
        if inner is None:
            return None
        gate = self.gate

        def factory() -> asyncio.Protocol:
            protocol = inner()
            assert isinstance(protocol, asyncio.Protocol)
            return _Gated(protocol, gate)

        fn: Callable[[], asyncio.Protocol] = factory
        return fn
