"""Migration of a path to a new peer address, sans-I/O: validated first, then moved, with the
congestion state reset when the IP changed (RFC 9000 §9.3, §9.4)."""

from __future__ import annotations

import pytest

from aioiroh.quic.connection import IrohConnection
from aioiroh.quic.frames import PingFrame
from aioiroh.quic.paths import reset_congestion
from tests.quic.support.pump import CLIENT_ADDR, SERVER_ADDR, Pump

from .forge import encode, forge

pytestmark = pytest.mark.timeout(30)


def _established() -> tuple[Pump, IrohConnection]:
    pump = Pump()
    pump.run_until(lambda: pump.client._handshake_confirmed)
    pump.run_until(lambda: not pump.in_flight)
    assert pump.server is not None
    return pump, pump.server


@pytest.mark.parametrize(
    ("new_addr", "reset"), [(("127.0.0.5", 1111), True), (("127.0.0.1", 1112), False)]
)
def test_rebinding_moves_after_validation_and_resets_congestion_on_a_new_ip(
    new_addr: tuple[str, int], reset: bool
) -> None:
    pump, server = _established()
    client = pump.client
    assert server.smoothed_rtt is not None
    now = pump.now
    server.receive_datagram(forge(client, encode([PingFrame()])), new_addr, now)
    assert server._path0.addr == CLIENT_ADDR  # not moved yet
    challenges = [d for d, a in server.datagrams_to_send(now) if a == new_addr]
    assert len(challenges) == 1
    # The client (behind its new NAT mapping) answers on its path; the answer comes from there.
    client.receive_datagram(challenges[0], SERVER_ADDR, now)
    for data, _addr in client.datagrams_to_send(now):
        server.receive_datagram(data, new_addr, now)
    assert server._path0.addr == new_addr
    assert server.rebindings == 1
    assert (server.smoothed_rtt is None) is reset


def test_an_unanswered_new_address_is_given_up_and_the_path_stays() -> None:
    pump, server = _established()
    now = pump.now
    stranger = ("127.0.0.9", 4444)
    datagram = forge(pump.client, encode([PingFrame()]))
    server.receive_datagram(datagram, stranger, now)
    sent = 0
    for _ in range(1000):
        sent += sum(len(d) for d, a in server.datagrams_to_send(now) if a == stranger)
        t = server.get_timer()
        if t is None or t > pump.now + 10:
            break
        now = max(now, t)
        server.handle_timer(now)
    assert server._path0.addr == CLIENT_ADDR
    assert server._path0.migrate_addr is None
    assert 0 < sent <= 3 * len(datagram)


def test_reset_congestion_still_matches_aioquics_recovery_fields() -> None:
    """reset_congestion writes aioquic's private recovery fields: fail loudly if they move."""
    _pump, server = _established()
    rec = server._recovery
    for name in ("_cc", "_rtt_initialized", "_rtt_latest", "_rtt_min", "_rtt_smoothed"):
        assert hasattr(rec, name), name
    assert hasattr(rec, "_rtt_variance") and hasattr(rec, "_pto_count")
    in_flight = rec.bytes_in_flight
    reset_congestion(rec, server.settings.congestion_control, 1200)
    assert rec.bytes_in_flight == in_flight
    assert server.smoothed_rtt is None
    assert rec.congestion_window == type(rec._cc)(max_datagram_size=1200).congestion_window
