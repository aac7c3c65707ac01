"""Hypothesis: whatever arrives at an established engine, nothing escapes it and no
peer-growable structure passes its bound.

Three kinds of input: raw random datagrams; valid 1-RTT packets (the peer's keys) carrying
random frame bytes, which reach every frame decoder and handler; and valid packets with a
few bytes flipped. Each from the real peer address or a stranger's.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioiroh.quic.amplification import MAX_TRACKED_ADDRESSES
from aioiroh.quic.connection import IrohConnection
from aioiroh.quic.connection_ids import MAX_PEER_CIDS_PER_PATH, MAX_PENDING_RETIRES
from aioiroh.quic.connection_state import (
    MAX_CTRL_FRAMES,
    MAX_OFFPATH,
    MAX_PATH_RESPONSES,
    MAX_PATHS,
)
from aioiroh.quic.frames import PingFrame
from aioiroh.quic.nat_traversal import NatTraversalServer
from aioiroh.quic.transport_parameters import IROH_NAT_TRAVERSAL_ADDRESSES
from tests.quic.support.pump import CLIENT_ADDR, Pump

from .forge import encode, forge

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOURCES = st.sampled_from([CLIENT_ADDR, ("127.0.0.9", 4444), ("127.0.0.10", 1)])


def _established() -> tuple[Pump, IrohConnection]:
    pump = Pump()
    pump.run_until(lambda: pump.server is not None and pump.server.nat_traversal_negotiated)
    pump.run_until(lambda: not pump.in_flight)
    assert pump.server is not None
    return pump, pump.server


def _drive(server: IrohConnection, now: float) -> None:
    """Let the engine react (send, run its timers for 2 s) as a driver would."""
    server.datagrams_to_send(now)
    for _ in range(200):
        t = server.get_timer()
        if t is None or t > now + 2.0:
            break
        now = max(now, t)
        server.handle_timer(now)
        server.datagrams_to_send(now)


def _assert_bounded(server: IrohConnection) -> None:
    assert len(server._paths) <= MAX_PATHS
    assert len(server._offpath) <= MAX_OFFPATH
    assert len(server._ctrl) <= MAX_CTRL_FRAMES
    assert len(server._path_responses) <= MAX_PATH_RESPONSES
    assert all(len(p.responses) <= MAX_PATH_RESPONSES for p in server._paths.values())
    assert len(server._amplification) <= MAX_TRACKED_ADDRESSES
    cids = server.cids
    assert len(cids.to_retire) <= MAX_PENDING_RETIRES + 1
    assert all(len(c) <= MAX_PEER_CIDS_PER_PATH for c in cids.peer_cids.values())
    nat = server._nat
    if isinstance(nat, NatTraversalServer):
        assert len(nat._remaining) <= IROH_NAT_TRAVERSAL_ADDRESSES
    assert len(server._nat_reach_outs) <= IROH_NAT_TRAVERSAL_ADDRESSES


@FUZZ
@given(datagrams=st.lists(st.binary(min_size=1, max_size=1500), max_size=8), source=SOURCES)
def test_random_datagrams_never_escape_the_engine(datagrams: list[bytes], source: object) -> None:
    pump, server = _established()
    for data in datagrams:
        server.receive_datagram(data, source, pump.now)
    _drive(server, pump.now)
    _assert_bounded(server)


@FUZZ
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=1200), min_size=1, max_size=6),
    source=SOURCES,
)
def test_authenticated_random_frames_never_escape_the_engine(
    payloads: list[bytes], source: object
) -> None:
    pump, server = _established()
    for payload in payloads:
        server.receive_datagram(forge(pump.client, payload), source, pump.now)
    _drive(server, pump.now)
    _assert_bounded(server)


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(1, 255)), max_size=4
    ),
    source=SOURCES,
)
def test_mutated_valid_packets_never_escape_the_engine(
    flips: list[tuple[int, int]], source: object
) -> None:
    pump, server = _established()
    data = bytearray(forge(pump.client, encode([PingFrame()]) + bytes(40)))
    for index, mask in flips:
        data[index % len(data)] ^= mask
    server.receive_datagram(bytes(data), source, pump.now)
    _drive(server, pump.now)
    _assert_bounded(server)
