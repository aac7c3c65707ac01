"""QNT state machines on virtual time, alone and as a pumped client/server pair."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from aioiroh.quic.frames import AddAddressFrame, ReachOutFrame, RemoveAddressFrame
from aioiroh.quic.nat_traversal import (
    MAX_NAT_PROBE_ATTEMPTS,
    Addr,
    NatTraversalClient,
    NatTraversalServer,
    NotEnoughAddresses,
    TooManyAddresses,
    probe_retry_delay,
)


def _rng() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def _addr(text: str) -> Addr:
    host, port = text.rsplit(":", 1)
    return ip_address(host.strip("[]")), int(port)


def _client(max_local: int = 32) -> NatTraversalClient:
    return NatTraversalClient(
        max_remote_addresses=32, max_local_addresses=max_local, random_bytes=_rng()
    )


def _server(max_remote: int = 32) -> NatTraversalServer:
    return NatTraversalServer(
        max_remote_addresses=max_remote, max_local_addresses=32, random_bytes=_rng()
    )


def test_retry_schedule() -> None:
    got = [round(probe_retry_delay(n) * 1000, 1) for n in range(10)]
    assert got == [33.3, 33.3, 66.6, 133.2, 266.4, 532.8, 1065.6, 2000.0, 2000.0, 2000.0]


def _drive(prober: NatTraversalClient | NatTraversalServer, start: float) -> list[float]:
    """Poll at each deadline until none is left; returns send times (virtual clock)."""
    times: list[float] = []
    while (deadline := prober.next_deadline()) is not None:
        assert deadline >= start
        if prober.poll_probes(deadline):
            times.append(deadline)
        start = deadline
    return times


def test_client_round_probes_nine_times_with_backoff() -> None:
    client = _client()
    client.add_local_address(_addr("10.0.0.2:5000"))
    client.add_local_address(_addr("[::ffff:10.0.0.3]:5001"))  # canonicalised
    assert client.on_add_address(AddAddressFrame(0, IPv4Address("203.0.113.1"), 7)) is not None
    frames = client.initiate_round(100.0)
    assert frames == [
        ReachOutFrame(1, IPv4Address("10.0.0.2"), 5000),
        ReachOutFrame(1, IPv4Address("10.0.0.3"), 5001),
    ]
    times = _drive(client, 100.0)
    assert len(times) == MAX_NAT_PROBE_ATTEMPTS
    gaps = [round((b - a) * 1000, 1) for a, b in itertools.pairwise(times)]
    assert gaps == [33.3, 33.3, 66.6, 133.2, 266.4, 532.8, 1065.6, 2000.0]


def test_not_enough_and_too_many_addresses() -> None:
    client = _client(max_local=1)
    with pytest.raises(NotEnoughAddresses):
        client.initiate_round(0.0)
    client.add_local_address(_addr("10.0.0.2:1"))
    client.add_local_address(_addr("10.0.0.2:1"))  # known: fine at capacity
    with pytest.raises(TooManyAddresses):
        client.add_local_address(_addr("10.0.0.3:1"))
    small = NatTraversalClient(max_remote_addresses=1, max_local_addresses=1, random_bytes=_rng())
    small.on_add_address(AddAddressFrame(0, IPv4Address("1.1.1.1"), 1))
    with pytest.raises(TooManyAddresses):
        small.on_add_address(AddAddressFrame(1, IPv4Address("1.1.1.2"), 1))
    server = _server(max_remote=1)
    server.on_reach_out(ReachOutFrame(1, IPv4Address("1.1.1.1"), 1), 0.0)
    with pytest.raises(TooManyAddresses):
        server.on_reach_out(ReachOutFrame(1, IPv4Address("1.1.1.2"), 1), 0.0)


def test_server_addresses_and_rounds() -> None:
    server = _server()
    add = server.add_local_address(_addr("192.0.2.1:10"))
    assert add == AddAddressFrame(0, IPv4Address("192.0.2.1"), 10)
    assert server.add_local_address(_addr("192.0.2.1:10")) is None
    assert server.add_local_address(_addr("[2001:db8::1]:11")) == AddAddressFrame(
        1, IPv6Address("2001:db8::1"), 11
    )
    assert server.remove_local_address(_addr("192.0.2.1:10")) == RemoveAddressFrame(0)
    assert server.remove_local_address(_addr("192.0.2.1:10")) is None
    assert server.add_local_address(_addr("192.0.2.9:10")) == AddAddressFrame(
        2, IPv4Address("192.0.2.9"), 10
    )

    a, b = _addr("10.0.0.1:1"), _addr("10.0.0.2:2")
    assert server.on_reach_out(ReachOutFrame(2, *a), 0.0)
    assert not server.on_reach_out(ReachOutFrame(2, *a), 0.0)  # retransmission
    assert not server.on_reach_out(ReachOutFrame(1, *b), 0.0)  # older round
    assert server.next_deadline() == 0.0
    assert [p[0] for p in server.poll_probes(0.0)] == [a]
    assert server.on_reach_out(ReachOutFrame(2, *b), 0.01)  # same round, new address
    assert server.next_deadline() == 0.01
    assert [p[0] for p in server.poll_probes(0.01)] == [b]
    # A newer round forgets the old addresses.
    assert server.on_reach_out(ReachOutFrame(3, *b), 1.0)
    assert [p[0] for p in server.poll_probes(1.0)] == [b]
    assert server.round == 3


def test_path_response_must_come_from_probed_address() -> None:
    client = _client()
    client.add_local_address(_addr("10.0.0.2:1"))
    target = _addr("203.0.113.1:7")
    client.on_add_address(AddAddressFrame(0, *target))
    client.initiate_round(0.0)
    [(addr, challenge)] = client.poll_probes(0.0)
    assert addr == target and len(challenge) == 8
    assert client.on_path_response(challenge, _addr("203.0.113.2:7")) is None
    assert client.on_path_response(b"\x00" * 8, target) is None
    assert client.on_path_response(challenge, target) == target
    assert client.on_path_response(challenge, target) is None  # consumed
    # Succeeded: no more retries for it.
    assert _drive(client, 0.0) == []


def test_remove_address_stops_probing() -> None:
    client = _client()
    client.add_local_address(_addr("10.0.0.2:1"))
    client.on_add_address(AddAddressFrame(4, IPv4Address("203.0.113.1"), 7))
    client.initiate_round(0.0)
    client.poll_probes(0.0)
    assert client.on_remove_address(RemoveAddressFrame(4)) == _addr("203.0.113.1:7")
    assert client.on_remove_address(RemoveAddressFrame(4)) is None
    assert _drive(client, 0.0) == []


def test_pumped_client_server_pair() -> None:
    """Both sides punch at each other; the client learns the server's reachable address.

    The virtual network delivers a probe only to addresses listed as reachable, like a NAT that
    only lets a mapping through once the inside has sent something.
    """
    client, server = _client(), _server()
    c_addr, s_public, s_private = (
        _addr("198.51.100.5:4000"),
        _addr("203.0.113.1:443"),
        _addr("10.9.9.9:443"),
    )
    for addr in (s_private, s_public):
        frame = server.add_local_address(addr)
        assert frame is not None
        client.on_add_address(frame)
    client.add_local_address(c_addr)
    reach_outs = client.initiate_round(0.0)
    now = 0.0
    for reach_out in reach_outs:
        server.on_reach_out(reach_out, now + 0.005)
    opened: list[Addr] = []
    server_hits: list[Addr] = []
    for _ in range(50):
        deadlines = [d for d in (client.next_deadline(), server.next_deadline()) if d is not None]
        if not deadlines or opened:
            break
        now = min(deadlines)
        for addr, _challenge in server.poll_probes(now):
            server_hits.append(addr)
        for addr, challenge in client.poll_probes(now):
            if addr == s_public and server_hits:  # the server's probe opened the NAT
                result = client.on_path_response(challenge, addr)
                if result is not None:
                    opened.append(result)
    assert opened == [s_public]
    assert server_hits and server_hits[0] == c_addr
    assert now < 0.1
