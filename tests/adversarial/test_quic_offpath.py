"""Off-path answers of the engine (sans-I/O): what an attacker can make it send, and where.

Every datagram towards an address no path validated is held to 3x what that address sent;
one PATH_CHALLENGE is answered per packet; NAT probes to peer-named addresses are small,
rate-limited across rounds and never go to special-purpose addresses.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from aioiroh.quic.connection import IrohConnection
from aioiroh.quic.frames import AddAddressFrame, PathChallengeFrame, PingFrame, ReachOutFrame
from aioiroh.quic.nat_traversal import MAX_PROBES_PER_SECOND
from tests.quic.support.pump import CLIENT_ADDR, Pump

from .forge import encode, forge

pytestmark = pytest.mark.timeout(30)

THIRD = ("127.0.0.9", 4444)


def _established() -> tuple[Pump, IrohConnection]:
    pump = Pump()
    pump.run_until(lambda: pump.server is not None and pump.server.nat_traversal_negotiated)
    pump.run_until(lambda: not pump.in_flight)
    assert pump.server is not None
    return pump, pump.server


def _run(server: IrohConnection, start: float, seconds: float) -> list[tuple[bytes, Any]]:
    """Fire only the server's timers for ``seconds`` (nothing reaches it meanwhile)."""
    out = list(server.datagrams_to_send(start))
    now = start
    while True:
        t = server.get_timer()
        if t is None or t > start + seconds:
            return out
        now = max(now, t)
        server.handle_timer(now)
        out.extend(server.datagrams_to_send(now))


def _to(out: list[tuple[bytes, Any]], addr: Any) -> list[bytes]:
    return [d for d, a in out if a == addr]


def test_sixty_four_challenges_in_one_packet_get_one_answer_within_three_times() -> None:
    pump, server = _established()
    datagram = forge(pump.client, encode([PathChallengeFrame(bytes([i]) * 8) for i in range(64)]))
    server.receive_datagram(datagram, THIRD, pump.now)
    sent = _to(_run(server, pump.now, 5.0), THIRD)
    assert len(sent) == 1
    assert sum(map(len, sent)) <= 3 * len(datagram)


def test_challenge_flood_on_the_path_gets_one_answer_per_packet() -> None:
    pump, server = _established()
    datagram = forge(pump.client, encode([PathChallengeFrame(bytes([i]) * 8) for i in range(64)]))
    server.receive_datagram(datagram, CLIENT_ADDR, pump.now)
    assert len(server._path_responses) == 1


def test_one_spoofed_ping_draws_at_most_three_times_its_size_over_ten_seconds() -> None:
    pump, server = _established()
    datagram = forge(pump.client, encode([PingFrame()]))
    server.receive_datagram(datagram, THIRD, pump.now)
    sent = _to(_run(server, pump.now, 10.0), THIRD)
    assert sum(map(len, sent)) <= 3 * len(datagram)
    assert server.rebindings == 0
    assert server._path0.addr == CLIENT_ADDR


def test_reach_out_rounds_are_rate_limited_and_probes_unpadded() -> None:
    pump, server = _established()
    now = pump.now
    victims = [(f"127.0.0.{10 + i}", 5000 + i) for i in range(4)]
    out: list[tuple[bytes, Any]] = []
    for round_ in range(1, 21):  # 20 rounds, 50 ms apart
        frames = [ReachOutFrame(round_, IPv4Address(h), p) for h, p in victims]
        server.receive_datagram(forge(pump.client, encode(frames)), CLIENT_ADDR, now)
        out.extend(_run(server, now, 0.05))
        now += 0.05
    out.extend(_run(server, now, 5.0))
    probes = [d for d, a in out if a in victims]
    assert probes, "REACH_OUT addresses are probed at all"
    assert max(map(len, probes)) < 100  # unpadded
    # Over ~6 s at most MAX_PROBES_PER_SECOND per started second.
    assert len(probes) <= MAX_PROBES_PER_SECOND * 7
    assert sum(map(len, probes)) < 30_000


@pytest.mark.parametrize(
    "ip", ["0.0.0.0", "224.0.0.1", "255.255.255.255", "240.1.2.3", "::", "ff02::1", "100::1"]
)
def test_special_purpose_reach_out_addresses_are_never_probed(ip: str) -> None:
    pump, server = _established()
    addr: IPv4Address | IPv6Address = ip_address(ip)
    frame = ReachOutFrame(1, addr, 7777)
    server.receive_datagram(forge(pump.client, encode([frame])), CLIENT_ADDR, pump.now)
    out = _run(server, pump.now, 3.0)
    assert not [a for _d, a in out if a != CLIENT_ADDR]
    assert server.nat_peer_addresses() == []


def test_special_purpose_add_address_is_ignored_by_the_client() -> None:
    pump, server = _established()
    frames = [
        AddAddressFrame(50, IPv4Address("224.0.0.1"), 80),
        AddAddressFrame(51, IPv4Address("127.0.0.1"), 0),
    ]
    pump.client.receive_datagram(forge(server, encode(frames)), pump.client._path0.addr, pump.now)
    remote = [(str(h), p) for h, p in pump.client._nat.remote_addresses.values()]  # type: ignore[union-attr]
    assert ("224.0.0.1", 80) not in remote and ("127.0.0.1", 0) not in remote
