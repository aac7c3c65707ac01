"""HolepunchSchedule on virtual time (wire doc §3.4 iroh scheduling)."""

from __future__ import annotations

import pytest

from aioiroh.socket.holepunch import HolepunchSchedule, RoundError

L1, L2, R1 = "10.0.0.1:1", "10.0.0.2:1", "203.0.113.1:1"


def _connected(now: float = 0.0) -> HolepunchSchedule:
    s = HolepunchSchedule()
    s.on_candidates(now, local=[L1], remote=[R1])
    s.on_connection_added(now)
    assert s.poll(now)
    s.round_started(now)
    return s


def test_round_on_connect_and_upgrade_timer() -> None:
    s = HolepunchSchedule()
    assert s.next_deadline() is None and not s.poll(0.0)
    s = _connected(0.0)
    assert s.next_deadline() == 60.0
    assert not s.upgrade_check_due(59.9) and s.upgrade_check_due(60.0)
    s.on_upgrade_check(60.0, best_ip_rtt=0.050)
    assert s.poll(60.0)
    s.round_started(60.0)
    assert s.next_deadline() == 120.0


@pytest.mark.parametrize(("rtt", "wanted"), [(0.010, False), (0.0101, True), (None, True)])
def test_good_enough_latency_skips_rounds(rtt: float | None, wanted: bool) -> None:
    s = _connected(0.0)
    s.on_upgrade_check(60.0, best_ip_rtt=rtt)
    assert s.poll(60.0) is wanted


def test_rate_limit_without_new_candidates() -> None:
    s = _connected(0.0)
    s.on_candidates(1.0, local=[L1], remote=[])  # a removal is not a reason to punch
    assert s.next_deadline() == 60.0
    s.on_upgrade_check(2.0, best_ip_rtt=None)
    assert not s.poll(2.0)
    assert s.next_deadline() == 5.0
    assert s.poll(5.0)


def test_new_candidates_bypass_rate_limit() -> None:
    s = _connected(0.0)
    s.on_candidates(1.0, local=[L1, L2], remote=[R1])
    assert s.next_deadline() == 1.0 and s.poll(1.0)
    s.round_started(1.0)
    s.on_candidates(1.5, local=[L1, L2], remote=[R1])  # unchanged
    assert not s.poll(1.5)


@pytest.mark.parametrize(
    ("error", "retry_at", "gave_up"),
    [
        ("not_enough_addresses", 0.1, False),
        ("multipath", 0.1, False),
        ("not_negotiated", None, True),
        ("too_many_addresses", 60.0, False),
    ],
)
def test_round_errors(error: RoundError, retry_at: float | None, gave_up: bool) -> None:
    s = HolepunchSchedule()
    s.on_connection_added(0.0)
    assert s.poll(0.0)
    s.round_failed(0.0, error)
    assert s.next_deadline() == retry_at
    assert s.gave_up is gave_up
    if gave_up:
        s.on_candidates(1.0, local=[L2], remote=[R1])
        s.on_connection_added(1.0)
        assert s.next_deadline() is None and not s.poll(1.0)
