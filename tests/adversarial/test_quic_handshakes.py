"""Strangers' Initials: junk creates no state, one source cannot hold many handshakes, and a
pending handshake gives up on its own. A legitimate client gets through meanwhile."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator

import pytest

from aioiroh.base.key import SecretKey
from aioiroh.endpoint import Endpoint
from aioiroh.quic.connection import IrohConnection
from aioiroh.quic.connection_state import HANDSHAKE_IDLE_TIMEOUT
from aioiroh.socket.socket import MAX_PENDING_PER_SOURCE

pytestmark = pytest.mark.timeout(30)

ALPN = b"aioiroh/test/adversarial/0"


def _valid_initial() -> bytes:
    client = IrohConnection(secret_key=SecretKey.generate(), is_client=True, alpns=[ALPN])
    client.connect(("127.0.0.1", 9), 0.0)
    return client.datagrams_to_send(0.0)[0][0]


def _junk_initial(template: bytes) -> bytes:
    """A valid long header with a fresh DCID and a garbage payload."""
    return template[:6] + os.urandom(8) + template[14:60] + os.urandom(len(template) - 60)


@pytest.fixture
async def server() -> AsyncIterator[Endpoint]:
    ep = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    yield ep
    await ep.close()


async def _flood(target: tuple[str, int], datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for i, datagram in enumerate(datagrams):
            sock.sendto(datagram, target)
            if i % 32 == 31:
                await asyncio.sleep(0)  # let the server read
        await asyncio.sleep(0.05)


async def _legit_connect_time(server: Endpoint) -> float:
    client = await Endpoint.bind(bind_addr="127.0.0.2:0", bind_addr_v6=False)
    try:
        accepted = asyncio.create_task(server.accept())
        start = time.monotonic()
        conn = await asyncio.wait_for(client.connect(server.addr(), ALPN), 5)
        await asyncio.wait_for(accepted, 5)
        elapsed = time.monotonic() - start
        conn.close()
        return elapsed
    finally:
        await client.close()


async def test_junk_initials_create_no_state_and_a_real_connect_takes_under_a_second(
    server: Endpoint,
) -> None:
    target = server.addr().direct_addresses[0]
    template = _valid_initial()
    await _flood((str(target[0]), int(target[1])), [_junk_initial(template) for _ in range(300)])
    sock = server._socket
    assert sock._pending_incoming == 0
    assert sock.stats.dropped_malformed >= 300
    assert await _legit_connect_time(server) < 1.0


async def test_one_source_holds_at_most_its_share_of_pending_handshakes(server: Endpoint) -> None:
    target = server.addr().direct_addresses[0]
    initials = [_valid_initial() for _ in range(3 * MAX_PENDING_PER_SOURCE)]
    await _flood((str(target[0]), int(target[1])), initials)
    sock = server._socket
    assert sock._pending_incoming == MAX_PENDING_PER_SOURCE
    assert sock.stats.dropped_incoming >= 2 * MAX_PENDING_PER_SOURCE
    assert await _legit_connect_time(server) < 1.0


def test_a_pending_server_handshake_has_a_deadline() -> None:
    initial = _valid_initial()
    dcid = initial[6:14]
    server = IrohConnection(
        secret_key=SecretKey.generate(),
        is_client=False,
        alpns=[ALPN],
        original_destination_connection_id=dcid,
    )
    server.receive_datagram(initial, ("127.0.0.1", 5555), 0.0)
    server.datagrams_to_send(0.0)
    now = 0.0
    for _ in range(1000):  # nobody answers: only the server's timers run
        t = server.get_timer()
        if t is None:
            break
        now = t
        server.handle_timer(now)
        server.datagrams_to_send(now)
    assert server.get_timer() is None
    assert now <= HANDSHAKE_IDLE_TIMEOUT + 1.0


async def test_under_pressure_new_sources_get_a_retry_and_no_state(server: Endpoint) -> None:
    sock = server._socket
    sock.retry_threshold = 8  # pressure from the 9th pending handshake on
    target = server.addr().direct_addresses[0]
    initials = [_valid_initial() for _ in range(MAX_PENDING_PER_SOURCE)]
    await _flood((str(target[0]), int(target[1])), initials)
    assert sock._pending_incoming == 8
    assert sock.stats.retries_sent == MAX_PENDING_PER_SOURCE - 8
    # A real client answers the Retry and gets in at once.
    assert await _legit_connect_time(server) < 1.0
