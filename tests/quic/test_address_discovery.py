"""QAD report sequencing in both directions."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from aioiroh.quic.address_discovery import (
    QAD_ROLE_BOTH,
    QAD_ROLE_RECEIVE,
    QAD_ROLE_SEND,
    AddressDiscovery,
)
from aioiroh.quic.frames import ObservedAddressFrame

A = (IPv4Address("198.51.100.1"), 4000)
B = (IPv4Address("198.51.100.1"), 4001)


@pytest.mark.parametrize(
    ("local", "peer", "sends", "receives"),
    [
        (QAD_ROLE_SEND, QAD_ROLE_RECEIVE, True, False),
        (QAD_ROLE_RECEIVE, QAD_ROLE_SEND, False, True),
        (QAD_ROLE_BOTH, QAD_ROLE_BOTH, True, True),
        (QAD_ROLE_SEND, QAD_ROLE_SEND, False, False),
        (QAD_ROLE_BOTH, QAD_ROLE_RECEIVE, True, False),
    ],
)
def test_roles(local: int, peer: int, sends: bool, receives: bool) -> None:
    qad = AddressDiscovery(local_role=local, peer_role=peer)
    assert (qad.sends, qad.receives) == (sends, receives)


def test_reports_only_on_change_with_increasing_sequence() -> None:
    server = AddressDiscovery(local_role=QAD_ROLE_SEND, peer_role=QAD_ROLE_RECEIVE)
    assert server.on_path_address(0, A) == ObservedAddressFrame(0, *A)
    assert server.on_path_address(0, A) is None
    assert server.on_path_address(0, B) == ObservedAddressFrame(1, *B)
    mapped = (IPv6Address("::ffff:198.51.100.1"), 4001)
    assert server.on_path_address(1, mapped) == ObservedAddressFrame(2, *B)
    server.on_path_abandoned(1)
    assert server.on_path_address(1, B) == ObservedAddressFrame(3, *B)


def test_receiver_keeps_latest_by_sequence() -> None:
    client = AddressDiscovery(local_role=QAD_ROLE_RECEIVE, peer_role=QAD_ROLE_SEND)
    assert client.on_observed_address(ObservedAddressFrame(1, *A)) == A
    assert client.on_observed_address(ObservedAddressFrame(0, *B)) is None  # reordered, older
    assert client.dropped_reports == 1
    assert client.observed_address == A
    assert client.on_observed_address(ObservedAddressFrame(2, *A)) is None  # same address
    assert client.on_observed_address(ObservedAddressFrame(5, *B)) == B
