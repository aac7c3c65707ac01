"""Endpoint-level connection setup: connect() wakes promptly, timeouts and cancels still abort."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aioquic.quic import events

from aioiroh import ConnectTimeout, Endpoint
from aioiroh.base.endpoint_addr import EndpointAddr
from aioiroh.base.key import SecretKey
from aioiroh.endpoint.connection import Connection

ALPN = b"aioiroh/connect-latency/0"


@pytest.fixture
async def pair():
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    yield server, client
    await client.close()
    await server.close()


async def test_connect_returns_one_loop_turn_after_handshake(pair, monkeypatch) -> None:
    server, client = pair
    loop = asyncio.get_running_loop()
    turns = {"n": 0, "at_handshake": None}

    def tick() -> None:
        turns["n"] += 1
        if not stop:
            loop.call_soon(tick)

    stop = False
    original = Connection._on_event

    def on_event(self: Connection, event: events.QuicEvent) -> None:
        if isinstance(event, events.HandshakeCompleted) and self._is_client:
            turns["at_handshake"] = turns["n"]
        original(self, event)

    monkeypatch.setattr(Connection, "_on_event", on_event)
    accept = asyncio.create_task(server.accept())
    loop.call_soon(tick)
    conn = await client.connect(server.addr(), ALPN, timeout=5)
    returned_at = turns["n"]
    stop = True
    assert turns["at_handshake"] is not None
    # wait_for(shield(handshake)) needed three more turns; awaiting the future needs one.
    assert returned_at - turns["at_handshake"] <= 1
    conn.close()
    (await accept).close()


async def _dead_addr(dead: socket.socket) -> EndpointAddr:
    dead.bind(("127.0.0.1", 0))
    return EndpointAddr(SecretKey.generate().public(), None, [dead.getsockname()])


async def test_connect_timeout_aborts_the_dial(pair) -> None:
    _, client = pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
        addr = await _dead_addr(dead)
        with pytest.raises(ConnectTimeout):
            await client.connect(addr, ALPN, timeout=0.2)
    assert not client._pending
    assert not client._socket.drivers


async def test_cancelled_connect_aborts_the_dial(pair) -> None:
    _, client = pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
        addr = await _dead_addr(dead)
        task = asyncio.create_task(client.connect(addr, ALPN, timeout=5))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not client._pending
    assert not client._socket.drivers
