"""Peer-growable state of an established engine stays bounded (sans-I/O, forged 1-RTT packets):
retired CIDs, paths, NAT traversal addresses, CRYPTO reassembly."""

from __future__ import annotations

import os
from ipaddress import IPv4Address
from typing import Any

import pytest

from aioiroh.quic.connection import IrohConnection
from aioiroh.quic.connection_ids import CONNECTION_ID_LIMIT_ERROR, MAX_PENDING_RETIRES
from aioiroh.quic.connection_state import CRYPTO_BUFFER_EXCEEDED, MAX_CRYPTO_BUFFER, MAX_PATHS
from aioiroh.quic.frames import (
    AddAddressFrame,
    CryptoFrame,
    Frame,
    NewConnectionIdFrame,
    ReachOutFrame,
)
from aioiroh.quic.transport_parameters import IROH_NAT_TRAVERSAL_ADDRESSES
from tests.quic.support.pump import CLIENT_ADDR, SERVER_ADDR, Pump

from .forge import encode, forge

pytestmark = pytest.mark.timeout(30)


def _established() -> tuple[Pump, IrohConnection]:
    pump = Pump()
    pump.run_until(lambda: pump.server is not None and pump.server.nat_traversal_negotiated)
    pump.run_until(lambda: not pump.in_flight)
    assert pump.server is not None
    return pump, pump.server


def _deliver(pump: Pump, target: IrohConnection, frames: list[Frame], per_packet: int) -> None:
    sender = pump.client if target is pump.server else pump.server
    assert sender is not None
    addr = CLIENT_ADDR if target is pump.server else SERVER_ADDR
    for i in range(0, len(frames), per_packet):
        target.receive_datagram(forge(sender, encode(frames[i : i + per_packet])), addr, pump.now)


def _closed_with(conn: IrohConnection, code: int) -> bool:
    event = conn.close_event
    return event is not None and event.error_code == code


def test_new_connection_ids_below_retire_prior_to_respect_the_retire_queue_cap() -> None:
    pump, server = _established()
    frames: list[Frame] = [NewConnectionIdFrame(500, 500, os.urandom(8), os.urandom(16))]
    frames += [NewConnectionIdFrame(s, 0, os.urandom(8), os.urandom(16)) for s in range(453)]
    _deliver(pump, server, frames, per_packet=40)
    assert len(server.cids.to_retire) <= MAX_PENDING_RETIRES
    assert _closed_with(server, CONNECTION_ID_LIMIT_ERROR)


def test_a_repeated_old_connection_id_is_retired_once() -> None:
    pump, server = _established()
    frames: list[Frame] = [NewConnectionIdFrame(20, 20, os.urandom(8), os.urandom(16))]
    frames += [NewConnectionIdFrame(3, 0, os.urandom(8), os.urandom(16))] * 200
    _deliver(pump, server, frames, per_packet=40)
    assert server.close_event is None
    assert server.cids.to_retire.count((None, 3)) <= 1


def test_paths_the_client_opens_are_bounded() -> None:
    pump, server = _established()
    for i in range(3 * MAX_PATHS):
        pump.client.open_path(("127.0.0.1", 3000 + i), pump.now)
        pump.run_until(lambda: not pump.in_flight)
    assert len(server._paths) <= MAX_PATHS
    assert len(pump.client._paths) <= MAX_PATHS


def test_add_address_flood_is_bounded_and_closes_the_connection() -> None:
    pump, _server = _established()
    client = pump.client
    frames: list[Frame] = [
        AddAddressFrame(seq, IPv4Address("127.0.0.1"), 1000 + seq) for seq in range(300)
    ]
    _deliver(pump, client, frames, per_packet=50)
    nat = client._nat
    assert nat is not None
    assert len(nat.remote_addresses) <= IROH_NAT_TRAVERSAL_ADDRESSES  # type: ignore[union-attr]
    assert client.close_event is not None


def test_reach_out_flood_in_one_round_is_bounded() -> None:
    pump, server = _established()
    frames: list[Frame] = [ReachOutFrame(1, IPv4Address("127.0.0.1"), 1000 + i) for i in range(300)]
    _deliver(pump, server, frames, per_packet=50)
    assert len(server.nat_peer_addresses()) <= IROH_NAT_TRAVERSAL_ADDRESSES
    assert len(server._nat._remaining) <= IROH_NAT_TRAVERSAL_ADDRESSES  # type: ignore[union-attr]


def test_one_rtt_crypto_far_ahead_is_bounded() -> None:
    pump, server = _established()
    frames: list[Frame] = [CryptoFrame(1000 + i * 1000, os.urandom(900)) for i in range(200)]
    _deliver(pump, server, frames, per_packet=1)
    receiver: Any = server._levels[2].crypto.receiver
    assert len(receiver._buffer) <= MAX_CRYPTO_BUFFER
    assert _closed_with(server, CRYPTO_BUFFER_EXCEEDED)
