"""The birthday hard-NAT attempt on real loopback sockets: endpoints, aux sockets, probe routing."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from aioiroh.endpoint import Connection, Endpoint
from aioiroh.quic.connection import ENGINE_ENV
from aioiroh.socket.hard_nat import KIND_ACK, KIND_PROBE, MAGIC, Probe, encode_probe
from aioiroh.socket.paths import IpPath
from aioiroh.socket.socket import MagicSocket

pytestmark = pytest.mark.timeout(30)

ALPN = b"aioiroh/test/hard-nat/0"
TOKEN = bytes(range(10, 18))
NATIVE = os.environ.get(ENGINE_ENV, "native") != "aioquic"


async def _bind(**kwargs: Any) -> Endpoint:
    return await Endpoint.bind(
        alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False, hard_nat=True, **kwargs
    )


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    server = await _bind()
    client = await _bind()
    try:
        yield server, client
    finally:
        await client.close()
        await server.close()


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """A bounded poll on a counter the event loop updates (no awaitable to wait on)."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def _port(sock: MagicSocket) -> int:
    assert sock.udp4 is not None
    return sock.udp4.local_addr[1]


def _unknown_probes_reach(sock: MagicSocket, n: int) -> bool:
    return sock.stats.dropped_unknown_probe >= n


def _aux_port(sock: MagicSocket, sock_id: int) -> int:
    return sock._aux[sock_id].local_addr[1]


class _FakeDriver:
    """Stands in for a ConnectionDriver with a registered probe route."""

    def __init__(self) -> None:
        self.closed = False
        self.probes: list[tuple[IpPath, Probe]] = []
        self.flushes = 0
        self.got = asyncio.Event()

    def on_hard_nat_probe(self, path: IpPath, probe: Probe, now: float) -> None:
        self.probes.append((path, probe))
        self.got.set()

    def flush(self) -> None:
        self.flushes += 1


# -- endpoints -----------------------------------------------------------------------------


async def test_direct_loopback_connection_runs_no_attempt(pair: tuple[Endpoint, Endpoint]) -> None:
    server, client = pair
    accepted = asyncio.create_task(server.accept())
    conn: Connection = await client.connect(server.addr(), ALPN)
    inc = await asyncio.wait_for(accepted, 10)
    send, recv = await conn.open_bi()
    await send.write_all(b"ping")
    await send.finish()
    ssend, srecv = await inc.accept_bi()
    assert await srecv.read_to_end(100) == b"ping"
    await ssend.write_all(b"pong")
    await ssend.finish()
    assert await recv.read_to_end(100) == b"pong"
    assert any(p.is_selected and p.is_ip for p in conn.paths())

    if NATIVE:
        # Both offered it, so it is negotiated...
        for c in (conn, inc):
            assert cast(Any, c._quic).hard_nat_negotiated
        # ...and the decision point (HARD_NAT_DELAY after the handshake) passes without an
        # attempt: a direct path exists (and loopback candidates are not public anyway).
        await _until(lambda: conn._driver._hard_nat_done and inc._driver._hard_nat_done, 10)
    for c in (conn, inc):
        assert c.hard_nat_attempt() is None
        assert c._driver.hard_nat is None
    assert server._socket.aux_socket_count == client._socket.aux_socket_count == 0
    assert not server._socket._probe_routes and not client._socket._probe_routes
    # The connection still works after the decision point.
    send, recv = await conn.open_bi()
    await send.write_all(b"again")
    await send.finish()
    _, srecv = await inc.accept_bi()
    assert await srecv.read_to_end(100) == b"again"
    conn.close(0, b"bye")


async def test_not_offered_without_hard_nat_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the native engine offers the birthday attempt: make sure it is the one in use.
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    server = await _bind()
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    try:
        assert server._socket.hard_nat and not client._socket.hard_nat
        accepted = asyncio.create_task(server.accept())
        conn = await client.connect(server.addr(), ALPN)
        inc = await asyncio.wait_for(accepted, 10)
        for c in (conn, inc):
            assert not cast(Any, c._quic).hard_nat_negotiated
            assert c.hard_nat_attempt() is None
        conn.close(0, b"bye")
    finally:
        await client.close()
        await server.close()


async def test_hard_nat_needs_nat_traversal() -> None:
    ep = await Endpoint.bind(
        bind_addr="127.0.0.1:0", bind_addr_v6=False, hard_nat=True, nat_traversal=False
    )
    try:
        assert not ep._socket.hard_nat
    finally:
        await ep.close()


# -- the magic socket ----------------------------------------------------------------------


async def test_aux_sockets_open_and_close(pair: tuple[Endpoint, Endpoint]) -> None:
    a, _ = pair
    sock = a._socket
    assert sock.aux_socket_count == 0
    ids = sock.open_aux_sockets(3)
    assert len(ids) == 3 == len(set(ids)) == sock.aux_socket_count
    assert 0 not in ids
    ports = {_aux_port(sock, i) for i in ids}
    assert len(ports) == 3 and _port(sock) not in ports
    assert all(sock._aux[i].local_addr[0] == "127.0.0.1" for i in ids)
    more = sock.open_aux_sockets(2)
    assert not set(more) & set(ids) and sock.aux_socket_count == 5
    sock.close_aux_sockets([ids[0], *more])
    assert sock.aux_socket_count == 2
    sock.close_aux_sockets([ids[0], 12345])  # unknown or already closed ids are ignored
    assert sock.aux_socket_count == 2
    sock.close_aux_sockets(ids)
    assert sock.aux_socket_count == 0
    # A closed aux socket id is not a route: sending on it is a no-op, not an error.
    sock.send(encode_probe(KIND_PROBE, TOKEN), IpPath("127.0.0.1", _port(sock), ids[1]))


async def test_probe_from_aux_socket_without_route_is_unknown_probe(
    pair: tuple[Endpoint, Endpoint],
) -> None:
    a, b = pair
    ids = a._socket.open_aux_sockets(3)
    stats = b._socket.stats
    before = (stats.recv_datagrams, stats.dropped_unknown_cid, stats.dropped_malformed)
    target = _port(b._socket)
    for sock_id in ids:
        want = stats.dropped_unknown_probe + 1
        a._socket.send(encode_probe(KIND_PROBE, TOKEN), IpPath("127.0.0.1", target, sock_id))
        await _until(functools.partial(_unknown_probes_reach, b._socket, want))
    a._socket.send(encode_probe(KIND_ACK, TOKEN), IpPath("127.0.0.1", target, ids[0]))
    await _until(lambda: stats.dropped_unknown_probe == 4)
    assert stats.recv_datagrams == before[0] + 4
    assert (stats.dropped_unknown_cid, stats.dropped_malformed) == before[1:]
    a._socket.close_aux_sockets(ids)
    assert a._socket.aux_socket_count == 0


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",
        b"\x00garbage-not-a-probe",
        MAGIC,
        MAGIC + bytes([7, 0]),  # unknown kind
        MAGIC + bytes([KIND_PROBE, 8]) + TOKEN[:3],  # token length mismatch
        MAGIC + bytes([KIND_PROBE, 21]) + bytes(21),  # token too long
    ],
)
async def test_malformed_zero_first_byte_is_malformed(
    pair: tuple[Endpoint, Endpoint], data: bytes
) -> None:
    a, b = pair
    (sock_id,) = a._socket.open_aux_sockets(1)
    stats = b._socket.stats
    before = (stats.dropped_unknown_cid, stats.dropped_unknown_probe)
    a._socket.send(data, IpPath("127.0.0.1", _port(b._socket), sock_id))
    await _until(lambda: stats.dropped_malformed == 1)
    assert (stats.dropped_unknown_cid, stats.dropped_unknown_probe) == before


async def test_probe_is_routed_by_token_with_the_receiving_socket_id(
    pair: tuple[Endpoint, Endpoint],
) -> None:
    a, b = pair
    a_ids = a._socket.open_aux_sockets(2)
    b_ids = b._socket.open_aux_sockets(2)
    fake = _FakeDriver()
    b._socket.register_probe_route(TOKEN, cast(Any, fake))
    # From a's aux socket to b's second aux socket: b sees its socket id and a's aux port.
    a._socket.send(
        encode_probe(KIND_PROBE, TOKEN),
        IpPath("127.0.0.1", _aux_port(b._socket, b_ids[1]), a_ids[0]),
    )
    await asyncio.wait_for(fake.got.wait(), 5)
    path, probe = fake.probes[0]
    assert probe == Probe(KIND_PROBE, TOKEN)
    assert path == IpPath("127.0.0.1", _aux_port(a._socket, a_ids[0]), b_ids[1])
    await _until(lambda: fake.flushes >= 1)  # touched: flushed after the batch
    # To b's main socket, from a's main socket: socket id 0 on both ends.
    fake.got.clear()
    a._socket.send(encode_probe(KIND_ACK, TOKEN), IpPath("127.0.0.1", _port(b._socket)))
    await asyncio.wait_for(fake.got.wait(), 5)
    assert fake.probes[1] == (
        IpPath("127.0.0.1", _port(a._socket), 0),
        Probe(KIND_ACK, TOKEN),
    )
    # Another token is not routed there.
    stats = b._socket.stats
    a._socket.send(encode_probe(KIND_PROBE, b"other"), IpPath("127.0.0.1", _port(b._socket)))
    await _until(lambda: stats.dropped_unknown_probe == 1)
    # A closed driver and an unregistered route drop the probe as unknown.
    fake.closed = True
    a._socket.send(encode_probe(KIND_PROBE, TOKEN), IpPath("127.0.0.1", _port(b._socket)))
    await _until(lambda: stats.dropped_unknown_probe == 2)
    fake.closed = False
    b._socket.unregister_probe_route(TOKEN, cast(Any, _FakeDriver()))  # not the owner: kept
    assert TOKEN in b._socket._probe_routes
    b._socket.unregister_probe_route(TOKEN, cast(Any, fake))
    a._socket.send(encode_probe(KIND_PROBE, TOKEN), IpPath("127.0.0.1", _port(b._socket)))
    await _until(lambda: stats.dropped_unknown_probe == 3)
    assert len(fake.probes) == 2
    assert stats.dropped_malformed == 0
