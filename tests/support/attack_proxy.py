"""A loopback UDP proxy that impairs and attacks the traffic between a client and a server.

The client sends to :attr:`AttackProxy.addr`; the proxy forwards from its *upstream* socket to
the server and relays the server's answers back. Knobs (all off by default, seeded):

- ``loss``, ``duplicate``, ``reorder`` (delay a datagram by ``reorder_delay``), ``corrupt``
  (flip one byte past the first 20), each a probability per datagram, both directions;
- :meth:`rebind`: a new upstream socket, i.e. the client's NAT mapping changed;
- ``spoof_copies``: every client datagram is also sent, *first*, from a third-party socket,
  as an on-path attacker copying packets to make the server talk to a victim; the bytes the
  third party sent and received are counted.

Loopback only; every socket is closed by :meth:`close`.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


class AttackProxy:
    """See the module docstring. Build with :meth:`start`."""

    def __init__(self, target: tuple[str, int], *, seed: int = 1) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.loss = 0.0
        self.duplicate = 0.0
        self.reorder = 0.0
        self.reorder_delay = 0.02
        self.corrupt = 0.0
        self.spoof_copies = False
        self.client: tuple[str, int] | None = None
        self.third_sent = 0
        """Bytes the third-party socket sent to the server (copies)."""
        self.third_received = 0
        """Bytes the server sent to the third-party socket."""
        self.rebinds = 0
        self._front: _Relay | None = None
        self._up: _Relay | None = None
        self._third: _Relay | None = None
        self._old: list[_Relay] = []
        self._handles: set[asyncio.TimerHandle] = set()

    @classmethod
    async def start(cls, target: tuple[str, int], *, seed: int = 1) -> AttackProxy:
        proxy = cls(target, seed=seed)
        proxy._front = await proxy._open(proxy._from_client)
        proxy._up = await proxy._open(proxy._from_server)
        proxy._third = await proxy._open(proxy._to_third)
        return proxy

    @property
    def addr(self) -> tuple[str, int]:
        """Where the client sends."""
        assert self._front is not None and self._front.transport is not None
        return self._front.transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

    @property
    def third_addr(self) -> tuple[str, int]:
        assert self._third is not None and self._third.transport is not None
        return self._third.transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

    async def _open(self, handler: Any) -> _Relay:
        loop = asyncio.get_running_loop()
        _t, proto = await loop.create_datagram_endpoint(
            lambda: _Relay(handler), local_addr=("127.0.0.1", 0)
        )
        return proto

    async def rebind(self) -> None:
        """The client's NAT mapping changes: later datagrams come from a new port."""
        assert self._up is not None
        self._up.on_datagram = lambda data, addr: None  # the old mapping is gone
        self._old.append(self._up)
        self._up = await self._open(self._from_server)
        self.rebinds += 1

    def _impair(self, data: bytes, send: Any) -> None:
        rng = self.rng
        if rng.random() < self.loss:
            return
        if rng.random() < self.corrupt and len(data) > 21:
            i = rng.randrange(20, len(data))
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
        copies = 2 if rng.random() < self.duplicate else 1
        for _ in range(copies):
            if rng.random() < self.reorder:
                handle = asyncio.get_running_loop().call_later(self.reorder_delay, send, data)
                self._handles.add(handle)
            else:
                send(data)

    def _from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client = addr
        if self.spoof_copies and self._third is not None and self._third.transport is not None:
            self._third.transport.sendto(data, self.target)
            self.third_sent += len(data)
        up = self._up
        if up is None or up.transport is None:
            return
        transport = up.transport
        self._impair(data, lambda d: transport.sendto(d, self.target))

    def _from_server(self, data: bytes, addr: tuple[str, int]) -> None:
        front = self._front
        if self.client is None or front is None or front.transport is None:
            return
        transport, client = front.transport, self.client
        self._impair(data, lambda d: transport.sendto(d, client))

    def _to_third(self, data: bytes, addr: tuple[str, int]) -> None:
        self.third_received += len(data)

    def close(self) -> None:
        for handle in self._handles:
            handle.cancel()
        for relay in (self._front, self._up, self._third, *self._old):
            if relay is not None and relay.transport is not None:
                relay.transport.close()
